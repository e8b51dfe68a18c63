//! Compiled `when` conditions and their evaluation.

use chrono::NaiveDateTime;
use regex::Regex;

use crate::config::{OneOrMany, WhenConfig};
use crate::error::RuleErrorKind;
use crate::eval::RouteInput;
use crate::net::Cidr;
use crate::tag::{parse_tag, Attributes, Tag};
use crate::time::TimeWindow;
use crate::validate::RouteErrors;

/// A test on one attribute.
#[derive(Debug, Clone)]
pub(crate) enum AttrTest {
    Equals(String),
    Regex(Regex),
    Exists(bool),
}

/// All conditions of one route; absent ones hold trivially.
#[derive(Debug, Clone, Default)]
pub(crate) struct Conditions {
    /// Accepted labels; `None` in the list is the abstention (`"none"`). Upper-cased.
    labels: Option<Vec<Option<String>>>,
    min_confidence: Option<f32>,
    max_confidence: Option<f32>,
    modality: Option<Vec<String>>,
    attributes: Vec<(Tag, AttrTest)>,
    calling_ae: Option<Vec<String>>,
    called_ae: Option<Vec<String>>,
    source: Option<Vec<Cidr>>,
    time: Option<Vec<TimeWindow>>,
}

fn non_empty<'a, T>(
    list: &'a Option<OneOrMany<T>>,
    field: &str,
    errs: &mut RouteErrors<'_>,
) -> Option<&'a [T]> {
    let items = list.as_ref()?.as_slice();
    if items.is_empty() {
        errs.push(
            format!("when.{field}"),
            RuleErrorKind::BadCondition(
                "empty list never matches; remove the condition instead".into(),
            ),
        );
        return None;
    }
    Some(items)
}

fn strings(
    list: &Option<OneOrMany<String>>,
    field: &str,
    upper: bool,
    errs: &mut RouteErrors<'_>,
) -> Option<Vec<String>> {
    non_empty(list, field, errs).map(|items| {
        items
            .iter()
            .map(|s| {
                if upper {
                    s.trim().to_ascii_uppercase()
                } else {
                    s.trim().to_string()
                }
            })
            .collect()
    })
}

fn confidence(value: Option<f32>, field: &str, errs: &mut RouteErrors<'_>) -> Option<f32> {
    let v = value?;
    if !(0.0..=1.0).contains(&v) {
        errs.push(
            format!("when.{field}"),
            RuleErrorKind::BadConfidence(format!("{v} is not in 0..=1")),
        );
    }
    Some(v)
}

impl Conditions {
    /// Compiles the `when` table, pushing every error found to `errs`.
    pub(crate) fn compile(when: &WhenConfig, errs: &mut RouteErrors<'_>) -> Conditions {
        let labels = non_empty(&when.label, "label", errs).map(|items| {
            items
                .iter()
                .map(|l| {
                    let l = l.trim().to_ascii_uppercase();
                    (l != "NONE").then_some(l)
                })
                .collect()
        });
        let min_confidence = confidence(when.min_confidence, "min_confidence", errs);
        let max_confidence = confidence(when.max_confidence, "max_confidence", errs);
        if let (Some(lo), Some(hi)) = (min_confidence, max_confidence) {
            if lo >= hi {
                errs.push(
                    "when.max_confidence",
                    RuleErrorKind::BadConfidence(format!(
                        "min_confidence {lo} >= max_confidence {hi} never matches"
                    )),
                );
            }
        }
        let mut attributes = Vec::new();
        for (i, cond) in when.attribute.iter().enumerate() {
            let field = format!("when.attribute[{i}]");
            let tag = match parse_tag(&cond.tag) {
                Ok(t) => Some(t),
                Err(e) => {
                    errs.push(format!("{field}.tag"), RuleErrorKind::BadTag(e));
                    None
                }
            };
            let ops = [
                cond.equals.is_some(),
                cond.regex.is_some(),
                cond.exists.is_some(),
            ];
            if ops.iter().filter(|b| **b).count() != 1 {
                errs.push(
                    field.clone(),
                    RuleErrorKind::BadCondition(format!(
                        "attribute {:?} needs exactly one of equals, regex, exists",
                        cond.tag
                    )),
                );
                continue;
            }
            let test = if let Some(v) = &cond.equals {
                Some(AttrTest::Equals(v.clone()))
            } else if let Some(pattern) = &cond.regex {
                match Regex::new(pattern) {
                    Ok(re) => Some(AttrTest::Regex(re)),
                    Err(e) => {
                        errs.push(
                            format!("{field}.regex"),
                            RuleErrorKind::BadRegex {
                                pattern: pattern.clone(),
                                reason: e.to_string(),
                            },
                        );
                        None
                    }
                }
            } else {
                cond.exists.map(AttrTest::Exists)
            };
            if let (Some(tag), Some(test)) = (tag, test) {
                attributes.push((tag, test));
            }
        }
        let source = non_empty(&when.source, "source", errs).map(|items| {
            items
                .iter()
                .enumerate()
                .filter_map(|(i, s)| match Cidr::parse(s) {
                    Ok(c) => Some(c),
                    Err(reason) => {
                        errs.push(
                            format!("when.source[{i}]"),
                            RuleErrorKind::BadCidr {
                                text: s.clone(),
                                reason,
                            },
                        );
                        None
                    }
                })
                .collect()
        });
        let time = non_empty(&when.time, "time", errs).map(|items| {
            items
                .iter()
                .enumerate()
                .filter_map(|(i, w)| match TimeWindow::compile(w) {
                    Ok(w) => Some(w),
                    Err(e) => {
                        let field = if items.len() == 1 {
                            "when.time".to_string()
                        } else {
                            format!("when.time[{i}]")
                        };
                        errs.push(field, RuleErrorKind::BadTimeWindow(e));
                        None
                    }
                })
                .collect()
        });
        Conditions {
            labels,
            min_confidence,
            max_confidence,
            modality: strings(&when.modality, "modality", true, errs),
            attributes,
            calling_ae: strings(&when.calling_ae, "calling_ae", false, errs),
            called_ae: strings(&when.called_ae, "called_ae", false, errs),
            source,
            time,
        }
    }

    /// True when the route has no condition at all (a catch-all).
    pub(crate) fn is_empty(&self) -> bool {
        self.labels.is_none()
            && self.min_confidence.is_none()
            && self.max_confidence.is_none()
            && self.modality.is_none()
            && self.attributes.is_empty()
            && self.calling_ae.is_none()
            && self.called_ae.is_none()
            && self.source.is_none()
            && self.time.is_none()
    }

    /// The labels this route tests for (upper-cased), the abstention (`"none"`) left out.
    pub(crate) fn labels(&self) -> impl Iterator<Item = &str> {
        self.labels.iter().flatten().filter_map(|l| l.as_deref())
    }

    /// Whether the route has label or confidence conditions.
    pub(crate) fn has_label_conditions(&self) -> bool {
        self.labels.is_some() || self.min_confidence.is_some() || self.max_confidence.is_some()
    }

    /// The label and confidence conditions (deferred to study time for study-scope routes).
    pub(crate) fn matches_label(&self, label: Option<&str>, confidence: Option<f32>) -> bool {
        if let Some(labels) = &self.labels {
            let label = label.map(|l| l.trim().to_ascii_uppercase());
            if !labels.contains(&label) {
                return false;
            }
        }
        if let Some(lo) = self.min_confidence {
            if !confidence.is_some_and(|c| c >= lo) {
                return false;
            }
        }
        if let Some(hi) = self.max_confidence {
            if !confidence.is_some_and(|c| c < hi) {
                return false;
            }
        }
        true
    }

    /// Every condition except label and confidence.
    pub(crate) fn matches_context(&self, input: &RouteInput<'_>) -> bool {
        let attrs = input.attributes;
        if let Some(mods) = &self.modality {
            let m = attrs
                .get(Tag::MODALITY)
                .map(|m| trim_value(&m).to_ascii_uppercase());
            if !m.is_some_and(|m| mods.contains(&m)) {
                return false;
            }
        }
        if !self
            .attributes
            .iter()
            .all(|(tag, test)| attr_matches(attrs, *tag, test))
        {
            return false;
        }
        if let Some(list) = &self.calling_ae {
            if !list.iter().any(|ae| ae == input.calling_ae.trim()) {
                return false;
            }
        }
        if let Some(list) = &self.called_ae {
            if !list.iter().any(|ae| ae == input.called_ae.trim()) {
                return false;
            }
        }
        if let Some(nets) = &self.source {
            if !nets.iter().any(|n| n.contains(input.peer)) {
                return false;
            }
        }
        if let Some(windows) = &self.time {
            if !in_any(windows, input.local_time) {
                return false;
            }
        }
        true
    }
}

fn in_any(windows: &[TimeWindow], now: NaiveDateTime) -> bool {
    windows.iter().any(|w| w.contains(now))
}

/// DICOM pads strings with spaces (and UIDs with NUL); conditions ignore that padding.
fn trim_value(v: &str) -> &str {
    v.trim_end_matches([' ', '\0']).trim_start_matches(' ')
}

fn attr_matches(attrs: &dyn Attributes, tag: Tag, test: &AttrTest) -> bool {
    match test {
        AttrTest::Exists(want) => attrs.exists(tag) == *want,
        AttrTest::Equals(expected) => attrs.get(tag).is_some_and(|v| {
            let v = trim_value(&v);
            v == expected || v.split('\\').any(|part| trim_value(part) == expected)
        }),
        AttrTest::Regex(re) => attrs.get(tag).is_some_and(|v| re.is_match(trim_value(&v))),
    }
}
