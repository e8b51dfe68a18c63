//! Evaluation metrics over a labelled folder set (`radroute eval`): per-class ROC AUC,
//! accuracy, confusion matrix and abstention rates. Pure functions, so the CLI stays thin.

use serde::Serialize;

use crate::Prediction;

/// Name used for "no label" in the confusion matrix.
pub const ABSTAIN: &str = "(abstain)";

/// Metrics of one evaluation run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EvalReport {
    /// Number of images evaluated.
    pub n: usize,
    /// Share of images whose outcome is right: the true class for model classes, an abstention
    /// for folders the model has no class for (e.g. `other`).
    pub accuracy: f64,
    /// Accuracy among the images that received a label.
    pub accuracy_labelled: Option<f64>,
    /// Share of images without a label.
    pub abstention_rate: f64,
    /// Per model class: one-vs-rest ROC AUC of its score (None without positives or negatives).
    pub per_class: Vec<ClassMetrics>,
    /// Per true folder: counts and abstention rate.
    pub per_truth: Vec<TruthMetrics>,
    /// Column names of the confusion matrix: model classes, then [`ABSTAIN`].
    pub predicted: Vec<String>,
    /// Rows in `per_truth` order, columns in `predicted` order.
    pub confusion: Vec<Vec<usize>>,
}

/// Metrics of one model class.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClassMetrics {
    /// Class name.
    pub class: String,
    /// Images of this class.
    pub positives: usize,
    /// ROC AUC of the class score, one vs rest.
    pub roc_auc: Option<f64>,
}

/// Metrics of one true folder.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TruthMetrics {
    /// Folder (true class) name.
    pub truth: String,
    /// Images in the folder.
    pub n: usize,
    /// Images labelled correctly (abstention counts as correct for non-model folders).
    pub correct: usize,
    /// Share of the folder's images without a label.
    pub abstention_rate: f64,
}

/// ROC AUC by the Mann–Whitney statistic (ties share their average rank).
pub fn roc_auc(scores: &[f32], positive: &[bool]) -> Option<f64> {
    let p = positive.iter().filter(|&&b| b).count();
    let n = positive.len() - p;
    if p == 0 || n == 0 || scores.len() != positive.len() {
        return None;
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut ranks = vec![0f64; scores.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for k in &idx[i..=j] {
            ranks[*k] = avg;
        }
        i = j + 1;
    }
    let sum_pos: f64 = ranks
        .iter()
        .zip(positive)
        .filter(|(_, &b)| b)
        .map(|(r, _)| r)
        .sum();
    let (p, n) = (p as f64, n as f64);
    Some((sum_pos - p * (p + 1.0) / 2.0) / (p * n))
}

/// Computes the report; `truth[i]` is the folder of the image predicted as `preds[i]`,
/// `classes` the model's class names in score order.
pub fn evaluate(truth: &[String], preds: &[Prediction], classes: &[String]) -> EvalReport {
    let n = truth.len().min(preds.len());
    let mut truths: Vec<String> = truth[..n].to_vec();
    truths.sort();
    truths.dedup();
    let mut predicted: Vec<String> = classes.to_vec();
    predicted.push(ABSTAIN.to_string());
    let mut confusion = vec![vec![0usize; predicted.len()]; truths.len()];
    let mut per_truth: Vec<TruthMetrics> = truths
        .iter()
        .map(|t| TruthMetrics {
            truth: t.clone(),
            n: 0,
            correct: 0,
            abstention_rate: 0.0,
        })
        .collect();
    let (mut correct, mut abstained, mut labelled_correct) = (0usize, 0usize, 0usize);
    for (t, p) in truth.iter().zip(preds).take(n) {
        let row = truths.iter().position(|x| x == t).unwrap_or(0);
        let got = p.label.as_ref().map(|c| c.name.as_str());
        let col = got
            .and_then(|g| classes.iter().position(|c| c == g))
            .unwrap_or(classes.len());
        confusion[row][col] += 1;
        let model_class = classes.iter().any(|c| c == t);
        let ok = match got {
            Some(g) => g == t,
            None => !model_class,
        };
        per_truth[row].n += 1;
        if ok {
            correct += 1;
            per_truth[row].correct += 1;
        }
        match got {
            None => abstained += 1,
            Some(_) if ok => labelled_correct += 1,
            Some(_) => {}
        }
    }
    for (row, m) in per_truth.iter_mut().enumerate() {
        m.abstention_rate = ratio(confusion[row][classes.len()], m.n);
    }
    let per_class = classes
        .iter()
        .enumerate()
        .map(|(ci, c)| {
            let positive: Vec<bool> = truth[..n].iter().map(|t| t == c).collect();
            let scores: Vec<f32> = preds[..n]
                .iter()
                .map(|p| p.scores.get(ci).map(|s| s.1).unwrap_or(0.0))
                .collect();
            ClassMetrics {
                class: c.clone(),
                positives: positive.iter().filter(|&&b| b).count(),
                roc_auc: roc_auc(&scores, &positive),
            }
        })
        .collect();
    let labelled = n - abstained;
    EvalReport {
        n,
        accuracy: ratio(correct, n),
        accuracy_labelled: (labelled > 0).then(|| ratio(labelled_correct, labelled)),
        abstention_rate: ratio(abstained, n),
        per_class,
        per_truth,
        predicted,
        confusion,
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decide, ClassInfo};

    fn classes() -> Vec<ClassInfo> {
        ["hand", "knee"]
            .iter()
            .map(|n| ClassInfo {
                name: n.to_string(),
                body_part: n.to_uppercase(),
                snomed: "1".into(),
                meaning: n.to_string(),
                threshold: 0.5,
                correct_threshold: None,
            })
            .collect()
    }

    #[test]
    fn auc_of_perfect_random_and_tied_rankings() {
        assert_eq!(
            roc_auc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]),
            Some(1.0)
        );
        assert_eq!(
            roc_auc(&[0.9, 0.8, 0.2, 0.1], &[false, false, true, true]),
            Some(0.0)
        );
        assert_eq!(roc_auc(&[0.5, 0.5], &[false, true]), Some(0.5));
        assert_eq!(roc_auc(&[0.5], &[true]), None);
    }

    #[test]
    fn report_counts_abstention_as_right_for_unknown_folders() {
        let c = classes();
        let names: Vec<String> = c.iter().map(|x| x.name.clone()).collect();
        let preds = vec![
            decide(&c, &[0.9, 0.1]), // hand -> hand
            decide(&c, &[0.2, 0.7]), // knee -> knee
            decide(&c, &[0.3, 0.4]), // other -> abstain (right)
            decide(&c, &[0.8, 0.1]), // knee -> hand (wrong)
        ];
        let truth: Vec<String> = ["hand", "knee", "other", "knee"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let r = evaluate(&truth, &preds, &names);
        assert_eq!(r.n, 4);
        assert!((r.accuracy - 0.75).abs() < 1e-12);
        assert!((r.abstention_rate - 0.25).abs() < 1e-12);
        assert_eq!(r.accuracy_labelled, Some(2.0 / 3.0));
        assert_eq!(r.predicted, vec!["hand", "knee", ABSTAIN]);
        // rows: hand, knee, other
        assert_eq!(
            r.confusion,
            vec![vec![1, 0, 0], vec![1, 1, 0], vec![0, 0, 1]]
        );
        assert_eq!(r.per_class[0].roc_auc, Some(1.0));
    }
}
