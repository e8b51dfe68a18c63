//! Orthanc as a destination PACS: its own JSON configuration and storage folder, REST helpers.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::http;
use crate::ports::{free_port, is_listening};
use crate::process::Daemon;

/// A running Orthanc.
pub struct Orthanc {
    /// DICOM AE title.
    pub ae_title: String,
    /// DICOM port.
    pub dicom_port: u16,
    /// REST port.
    pub http_port: u16,
    /// Its folder (config, storage, log).
    pub dir: PathBuf,
    daemon: Daemon,
}

/// `$ORTHANC_BIN`, default /usr/sbin/Orthanc.
pub fn binary() -> PathBuf {
    let p = std::env::var_os("ORTHANC_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/Orthanc"));
    assert!(
        p.is_file(),
        "Orthanc not found at {} (set ORTHANC_BIN)",
        p.display()
    );
    p
}

impl Orthanc {
    /// Starts Orthanc with storage under `dir` on free ports and waits for REST and DICOM.
    pub fn start(dir: &Path, ae_title: &str) -> Orthanc {
        Self::start_with(dir, ae_title, serde_json::json!({}))
    }

    /// Like [`Orthanc::start`] with configuration keys of `overrides` (a JSON object) replacing
    /// the defaults, e.g. `{"DicomScpTimeout": 1}`.
    pub fn start_with(dir: &Path, ae_title: &str, overrides: serde_json::Value) -> Orthanc {
        let db = dir.join("db");
        std::fs::create_dir_all(&db).expect("create Orthanc storage dir");
        let dicom_port = free_port();
        let http_port = free_port();
        let mut cfg = serde_json::json!({
            "Name": "radroute-e2e",
            "StorageDirectory": db,
            "IndexDirectory": db,
            "Plugins": [],
            "HttpServerEnabled": true,
            "HttpPort": http_port,
            "RemoteAccessAllowed": false,
            "AuthenticationEnabled": false,
            "DicomServerEnabled": true,
            "DicomAet": ae_title,
            "DicomPort": dicom_port,
            "DicomCheckCalledAet": false,
            "DicomAlwaysAllowEcho": true,
            "DicomAlwaysAllowStore": true,
            "DicomCheckModalityHost": false,
            "SaveJobs": false,
            "StableAge": 1,
            "DicomScpTimeout": 30,
            "HttpCompressionEnabled": false,
        });
        if let (Some(cfg), Some(overrides)) = (cfg.as_object_mut(), overrides.as_object()) {
            for (key, value) in overrides {
                cfg.insert(key.clone(), value.clone());
            }
        }
        let cfg_path = dir.join("orthanc.json");
        std::fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg).unwrap())
            .expect("write orthanc.json");
        let mut cmd = Command::new(binary());
        cmd.env("TCP_NODELAY", "1").arg("--no-jobs").arg(&cfg_path);
        let log = dir.join("orthanc.log");
        let mut daemon = Daemon::spawn("orthanc", cmd, &log);
        crate::wait_for(
            Duration::from_secs(60),
            Duration::from_millis(100),
            || {
                if let Some(st) = daemon.try_exited() {
                    panic!("Orthanc exited: {st}\n{}", daemon.log_tail(30));
                }
                let rest = http::get(http_port, "/system")
                    .map(|r| r.status == 200)
                    .unwrap_or(false);
                (rest && is_listening(dicom_port)).then_some(())
            },
            || {
                format!(
                    "Orthanc not ready (REST {http_port}, DICOM {dicom_port}):\n{}",
                    crate::file_tail(&log, 30)
                )
            },
        );
        Orthanc {
            ae_title: ae_title.into(),
            dicom_port,
            http_port,
            dir: dir.to_path_buf(),
            daemon,
        }
    }

    /// Its log tail.
    pub fn log_tail(&self, n: usize) -> String {
        self.daemon.log_tail(n)
    }

    /// /statistics CountInstances.
    pub fn count_instances(&self) -> u64 {
        http::get(self.http_port, "/statistics")
            .and_then(|r| r.json())
            .ok()
            .and_then(|v| v["CountInstances"].as_u64())
            .unwrap_or(0)
    }

    /// Orthanc's instance id for a SOP Instance UID (POST /tools/lookup), if stored.
    pub fn lookup(&self, sop_instance_uid: &str) -> Option<String> {
        let v = http::post(self.http_port, "/tools/lookup", sop_instance_uid.as_bytes())
            .ok()?
            .json()
            .ok()?;
        v.as_array()?
            .iter()
            .find(|e| e["Type"] == "Instance")
            .and_then(|e| e["ID"].as_str().map(str::to_string))
    }

    /// GET /instances/{id}/tags?simplify.
    pub fn tags(&self, id: &str) -> serde_json::Value {
        http::get(self.http_port, &format!("/instances/{id}/tags?simplify"))
            .and_then(|r| r.json())
            .unwrap_or_else(|e| panic!("Orthanc tags of {id}: {e}"))
    }

    /// GET /instances/{id}/file: the stored Part-10 bytes.
    pub fn file(&self, id: &str) -> Vec<u8> {
        let r = http::request(
            "GET",
            self.http_port,
            &format!("/instances/{id}/file"),
            None,
            Duration::from_secs(60),
        )
        .unwrap_or_else(|e| panic!("Orthanc file of {id}: {e}"));
        assert_eq!(r.status, 200, "Orthanc file of {id}: HTTP {}", r.status);
        r.body
    }

    /// DELETE /instances/{id} (several samples share a SOP Instance UID, and Orthanc keeps the
    /// first copy it receives).
    pub fn delete(&self, id: &str) {
        let r = http::request(
            "DELETE",
            self.http_port,
            &format!("/instances/{id}"),
            None,
            Duration::from_secs(30),
        )
        .unwrap_or_else(|e| panic!("Orthanc delete {id}: {e}"));
        assert_eq!(
            r.status,
            200,
            "Orthanc delete {id}: HTTP {} {}",
            r.status,
            r.text()
        );
    }

    /// GET /instances/{id}/metadata/TransferSyntax (as received).
    pub fn transfer_syntax(&self, id: &str) -> String {
        http::get(
            self.http_port,
            &format!("/instances/{id}/metadata/TransferSyntax"),
        )
        .map(|r| r.text().trim().to_string())
        .unwrap_or_else(|e| panic!("Orthanc transfer syntax of {id}: {e}"))
    }
}
