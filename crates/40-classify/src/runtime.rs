//! Finding and loading the ONNX Runtime shared library, once per process.
//!
//! radroute uses the library of the PyPI `onnxruntime` (CPU) or `onnxruntime-gpu` wheel, loaded
//! dynamically. Discovery order: the explicit path (config/CLI) → `ORT_DYLIB_PATH` →
//! `.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*` searched in the current
//! directory and every ancestor of the executable's directory. `ort::init` would panic on a
//! missing library, so the path is checked here first and a [`ClassifyError::Runtime`] names
//! every place that was tried.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;

use crate::ClassifyError;

/// Where inference runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// CUDA when the library has the CUDA execution provider and an NVIDIA GPU is present,
    /// else CPU.
    #[default]
    Auto,
    /// CPU only.
    Cpu,
    /// CUDA, falling back to CPU with a warning when it cannot be registered.
    Cuda,
}

/// How to load ONNX Runtime and build sessions.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Explicit path of `libonnxruntime.so*`; `None` searches as the module docs say.
    pub library_path: Option<PathBuf>,
    /// Execution device.
    pub device: Device,
    /// Intra-op threads per session (0 lets ONNX Runtime choose).
    pub intra_threads: usize,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            library_path: None,
            device: Device::Auto,
            intra_threads: 2,
        }
    }
}

/// The process-wide environment and the library it came from.
pub(crate) struct Runtime {
    pub env: Environment,
    pub library: PathBuf,
}

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

/// Loads the library (first call only) and returns the shared environment.
pub(crate) fn runtime(explicit: Option<&Path>) -> Result<&'static Runtime, ClassifyError> {
    let r = RUNTIME.get_or_init(|| init(explicit));
    match r {
        Ok(rt) => {
            if let Some(p) = explicit.filter(|p| *p != rt.library) {
                tracing::warn!(requested = %p.display(), loaded = %rt.library.display(),
                    "ONNX Runtime is already loaded from another library; keeping it");
            }
            Ok(rt)
        }
        Err(detail) => Err(ClassifyError::Runtime {
            library: None,
            detail: detail.clone(),
        }),
    }
}

fn init(explicit: Option<&Path>) -> Result<Runtime, String> {
    let library = find_library(explicit)?;
    preload_cuda_libraries(&library);
    let builder = ort::init_from(&library).map_err(|e| e.to_string())?;
    let env = builder
        .with_name("radroute")
        .build()
        .map_err(|e| e.to_string())?;
    tracing::info!(library = %library.display(), "ONNX Runtime loaded");
    Ok(Runtime { env, library })
}

/// Resolves the library path by the discovery order of the module docs.
pub fn find_library(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(format!("configured library {} does not exist", p.display()))
        };
    }
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from) {
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("ORT_DYLIB_PATH={} does not exist", p.display()))
        };
    }
    let mut bases: Vec<PathBuf> = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        bases.push(cwd);
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        bases.extend(dir.ancestors().map(Path::to_path_buf));
    }
    for base in &bases {
        if let Some(p) = venv_library(&base.join(".venv")) {
            return Ok(p);
        }
    }
    Err(format!(
        "libonnxruntime.so not found: set ORT_DYLIB_PATH or the library path, or install the \
         onnxruntime wheel into .venv (searched .venv under {})",
        bases
            .iter()
            .map(|b| b.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// `venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*`.
fn venv_library(venv: &Path) -> Option<PathBuf> {
    let lib = std::fs::read_dir(venv.join("lib")).ok()?;
    let mut found: Vec<PathBuf> = lib
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .filter_map(|e| {
            let capi = e.path().join("site-packages/onnxruntime/capi");
            std::fs::read_dir(capi).ok()
        })
        .flat_map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy().starts_with("libonnxruntime.so"))
                .unwrap_or(false)
        })
        .collect();
    found.sort();
    found.pop()
}

/// True when an NVIDIA GPU device node exists.
pub(crate) fn gpu_present() -> bool {
    Path::new("/dev/nvidia0").exists() || Path::new("/proc/driver/nvidia/gpus").is_dir()
}

/// The `onnxruntime-gpu` wheel finds CUDA/cuDNN from the `nvidia-*` wheels because Python
/// preloads them; do the same (best effort, RTLD_GLOBAL) so the CUDA provider can load without
/// LD_LIBRARY_PATH. Absent directories (CPU wheel) make this a no-op.
fn preload_cuda_libraries(library: &Path) {
    let Some(site) = library.ancestors().nth(3) else {
        return;
    };
    let nvidia = site.join("nvidia");
    if !nvidia.is_dir() || !gpu_present() {
        return;
    }
    let order = [
        "libcudart",
        "libcublasLt",
        "libcublas",
        "libcufft",
        "libcurand",
        "libnvrtc",
        "libcudnn",
    ];
    let mut libs: Vec<PathBuf> = walk_lib_dirs(&nvidia);
    libs.sort_by_key(|p| {
        let n = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        order
            .iter()
            .position(|o| n.starts_with(o))
            .unwrap_or(order.len())
    });
    for p in libs {
        let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) else {
            continue;
        };
        // SAFETY: dlopen with a NUL-terminated path; the handle is intentionally leaked so the
        // library stays loaded for the provider.
        let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
        tracing::debug!(lib = %p.display(), ok = !h.is_null(), "preload CUDA library");
    }
}

fn walk_lib_dirs(nvidia: &Path) -> Vec<PathBuf> {
    let Ok(pkgs) = std::fs::read_dir(nvidia) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for pkg in pkgs.filter_map(|e| e.ok()) {
        // nvidia/<pkg>/lib and nvidia/cu13/lib
        for dir in [pkg.path().join("lib")] {
            if let Ok(rd) = std::fs::read_dir(dir) {
                out.extend(
                    rd.filter_map(|e| e.ok())
                        .map(|e| e.path())
                        .filter(|p| p.to_string_lossy().contains(".so")),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_missing_library_is_a_clear_error() {
        let e = find_library(Some(Path::new("/nonexistent/libonnxruntime.so"))).unwrap_err();
        assert!(e.contains("does not exist"), "{e}");
    }
}
