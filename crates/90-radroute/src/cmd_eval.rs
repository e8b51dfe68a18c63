//! `radroute eval [--json] [--model DIR] DIR`: evaluates a model on a folder with one sub-folder
//! per class (folder name = true class; folders the model has no class for, such as `other`,
//! count as right when the model abstains). Prints per-class ROC AUC, accuracy, confusion matrix
//! and abstention rates; `--json` prints the same as one JSON object.

use std::path::PathBuf;
use std::process::ExitCode;

use radroute_classify::eval::{evaluate, EvalReport};

use crate::cmd_classify::{classify_files, collect_files, load_model, CommandError, ModelArgs};

/// Arguments of `radroute eval`.
#[derive(clap::Args, Debug, Clone)]
pub struct EvalArgs {
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Model and runtime.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Folder holding one sub-folder of images per class.
    pub dir: PathBuf,
}

/// Runs `radroute eval`. Files that cannot be decoded are counted and skipped.
pub fn run(args: &EvalArgs) -> Result<ExitCode, CommandError> {
    let mut classes_dirs: Vec<PathBuf> = std::fs::read_dir(&args.dir)
        .map_err(|source| CommandError::Io {
            path: args.dir.clone(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    classes_dirs.sort();
    let mut files = Vec::new();
    let mut truth_of = Vec::new();
    for d in &classes_dirs {
        let name = d
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for f in collect_files(std::slice::from_ref(d))? {
            files.push(f);
            truth_of.push(name.clone());
        }
    }
    if files.is_empty() {
        return Err(CommandError::NoInputs(args.dir.display().to_string()));
    }
    let mut model = load_model(&args.model)?;
    let class_names: Vec<String> = model.classes().iter().map(|c| c.name.clone()).collect();
    let (mut truth, mut preds, mut failed) = (Vec::new(), Vec::new(), 0usize);
    classify_files(&mut model, &files, args.model.batch, |r| match r.outcome {
        Ok(p) => {
            truth.push(truth_of[r.index].clone());
            preds.push(p);
        }
        Err(e) => {
            failed += 1;
            eprintln!("skipped {}: {e}", r.path.display());
        }
    })?;
    let report = evaluate(&truth, &preds, &class_names);
    let info = model.info();
    if args.json {
        let mut v =
            serde_json::to_value(&report).map_err(|e| CommandError::Output(e.to_string()))?;
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "model".into(),
                format!("{} {}", info.name, info.version).into(),
            );
            o.insert("failed".into(), failed.into());
        }
        println!("{v}");
    } else {
        print_report(&report, &format!("{} {}", info.name, info.version), failed);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(r: &EvalReport, model: &str, failed: usize) {
    println!("model {model}: {} images ({failed} failed to decode)", r.n);
    println!(
        "accuracy {:.3}   accuracy when labelled {}   abstention {:.3}",
        r.accuracy,
        r.accuracy_labelled
            .map(|a| format!("{a:.3}"))
            .unwrap_or_else(|| "-".into()),
        r.abstention_rate
    );
    println!("\n{:<12} {:>9} {:>8}", "class", "positives", "ROC AUC");
    for c in &r.per_class {
        let auc = c
            .roc_auc
            .map(|a| format!("{a:.3}"))
            .unwrap_or_else(|| "-".into());
        println!("{:<12} {:>9} {:>8}", c.class, c.positives, auc);
    }
    println!(
        "\n{:<12} {:>6} {:>8} {:>10}",
        "truth", "n", "correct", "abstained"
    );
    for t in &r.per_truth {
        println!(
            "{:<12} {:>6} {:>8} {:>10.3}",
            t.truth, t.n, t.correct, t.abstention_rate
        );
    }
    println!("\nconfusion (rows: truth, columns: predicted)");
    print!("{:<12}", "");
    for p in &r.predicted {
        print!(" {:>9}", p.chars().take(9).collect::<String>());
    }
    println!();
    for (t, row) in r.per_truth.iter().zip(&r.confusion) {
        print!("{:<12}", t.truth);
        for n in row {
            print!(" {n:>9}");
        }
        println!();
    }
}
