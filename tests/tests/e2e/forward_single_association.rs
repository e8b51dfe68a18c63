//! Forwarding into a destination that serves one association at a time (dcmtk `storescp`
//! without `--fork`, like many small PACS and workstations), configured with the default
//! `associations = 2` (issue 14). A second association to it waits unanswered in its backlog
//! while the first is open; radroute must notice that, let the first go, remember that the
//! destination serves one, and not park work behind an association that lingers.
//!
//! Not a timed test: `linger_ms` is 30 s, so a job stuck behind a lingering association (the
//! cliff) misses the 20 s wait by far, while without the cliff every instance arrives in about
//! a second.

use std::path::PathBuf;
use std::time::Duration;

use radroute_e2e::dcmtk::storescu;
use radroute_e2e::python::{make_instances, Instance};
use radroute_e2e::radroute::metric;
use radroute_e2e::wait_for;

use crate::association_reuse::radroute_to_sink;

#[test]
fn a_one_association_destination_gets_every_instance_without_waiting_for_linger() {
    let dir = radroute_e2e::test_dir("single-assoc");
    // storescp serves one association at a time unless given --fork.
    let (sink, r) = radroute_to_sink(dir.path(), "associations = 2\nlinger_ms = 30000");
    let rounds: Vec<Vec<PathBuf>> = (0..2)
        .map(|round| {
            (0..12)
                .map(|i| {
                    dir.path()
                        .join(format!("in{round}"))
                        .join(format!("{i}.dcm"))
                })
                .collect()
        })
        .collect();
    for files in &rounds {
        let specs: Vec<(&std::path::Path, Instance)> = files
            .iter()
            .map(|f| (f.as_path(), Instance::default()))
            .collect();
        make_instances(&specs);
    }

    let mut expected = 0;
    for files in &rounds {
        // One sender, one association, a stream of instances: while radroute forwards the
        // first, the next are routed and a second worker has jobs to send.
        let run = storescu("RADROUTE", r.dicom_port, &[], files);
        assert!(run.all_ok(files), "{}", r.context(&run.log));
        expected += files.len();
        wait_for(
            Duration::from_secs(20),
            Duration::from_millis(50),
            || (sink.received().len() >= expected).then_some(()),
            || {
                r.context(&format!(
                    "{} of {expected} arrived: work waits behind a lingering association\n{}",
                    sink.received().len(),
                    sink.log_tail(30)
                ))
            },
        );
    }

    let metrics = r.metrics();
    let sink_label = [("destination", "sink")];
    let limit = metric(&metrics, "radroute_forward_associations_limit", &sink_label);
    let stalls = metric(
        &metrics,
        "radroute_forward_association_stalls_total",
        &sink_label,
    )
    .unwrap_or(0.0);
    assert!(
        limit.is_some(),
        "no learned association limit in /metrics:\n{metrics}"
    );
    // Learned once and remembered: at most one opening stalled beside a sibling over both
    // rounds, and once it did the destination is known to serve one.
    assert!(stalls <= 1.0, "{stalls} stalls:\n{}", r.log());
    if stalls == 1.0 {
        assert_eq!(limit, Some(1.0), "{metrics}");
        assert!(
            r.log().contains("forward associations limit changed"),
            "{}",
            r.context("the limit changed without a log line")
        );
    }
    // A stalled opening gets in once its sibling lets go; the kept-open association then
    // carries the rest: a handful of associations for 24 instances, not one per batch.
    let associations = sink.store_associations();
    assert!(
        (1..=3).contains(&associations),
        "{associations} associations for 24 instances:\n{}",
        sink.log()
    );
    assert!(
        !metrics
            .lines()
            .any(|l| l.starts_with("radroute_forward_total") && l.contains("outcome=\"retry\"")),
        "waiting for the destination counted as a failed attempt:\n{metrics}"
    );
}
