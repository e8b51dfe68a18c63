//! `radroute queue`: counts, job lists, retrying dead letters, dropping jobs. Works on the
//! queue database directly, so it also works while the node is stopped: the SQLite queue of a
//! single node, or the cluster's PostgreSQL queue when the configuration has `[cluster]`
//! (the backend the node itself uses, see [`open`]). A retry of a job whose files were purged
//! (`[spool] dead_letter_retention_secs`) fails with the queue's error, and a dropped job's
//! files are purged after `[spool] retention_secs`.

use radroute_queue::{ForwardQueue, JobFilter, JobState, SqliteQueue, UnixMillis};
use radroute_queue_pg::PostgresQueue;

use crate::cli::QueueAction;
use radroute_config::Config;

/// Opens the queue the node of `cfg` uses: with `[cluster]` the shared PostgreSQL queue (the
/// driver settings of `radroute_node::cluster::pg_config`, as the node's start-up builds them),
/// else the node's SQLite database at `[queue] path`.
pub fn open(cfg: &Config) -> Result<Box<dyn ForwardQueue>, String> {
    if let Some(cluster) = &cfg.cluster {
        let pg = radroute_node::cluster::pg_config(cfg, cluster).map_err(|e| e.to_string())?;
        let options = radroute_node::cluster::queue_options(cfg, cluster);
        let queue = PostgresQueue::connect(&pg, options).map_err(|e| {
            format!(
                "cannot open the cluster queue {}: {e}",
                cluster.redacted_url()
            )
        })?;
        return Ok(Box::new(queue));
    }
    let path = cfg.queue_path();
    if let Some(dir) = path.parent().filter(|d| !d.is_dir()) {
        return Err(missing_spool_hint(dir, &cfg.source));
    }
    let queue = SqliteQueue::open(&path, cfg.retry_policy())
        .map_err(|e| format!("cannot open queue {}: {e}", path.display()))?;
    Ok(Box::new(queue))
}

/// Runs one queue action and prints its result.
pub fn run(cfg: &Config, action: QueueAction) -> Result<(), String> {
    let queue = open(cfg)?;
    let now = UnixMillis::now();
    match action {
        QueueAction::Counts { json } => {
            let c = queue.counts().map_err(|e| e.to_string())?;
            if json {
                let per: serde_json::Map<String, serde_json::Value> = c
                    .per_destination
                    .iter()
                    .map(|(d, j)| {
                        (d.clone(), serde_json::json!({"queued": j.queued, "in_flight": j.in_flight, "delivered": j.delivered, "dead": j.dead}))
                    })
                    .collect();
                let value = serde_json::json!({
                    "instances": {"received": c.instances.received, "routed": c.instances.routed, "done": c.instances.done},
                    "jobs": {"queued": c.jobs.queued, "in_flight": c.jobs.in_flight, "delivered": c.jobs.delivered, "dead": c.jobs.dead},
                    "destinations": per,
                });
                println!("{value}");
            } else {
                println!(
                    "instances: {} received, {} routed, {} done",
                    c.instances.received, c.instances.routed, c.instances.done
                );
                println!(
                    "{:<20} {:>8} {:>9} {:>10} {:>6}",
                    "destination", "queued", "in_flight", "delivered", "dead"
                );
                for (d, j) in &c.per_destination {
                    println!(
                        "{:<20} {:>8} {:>9} {:>10} {:>6}",
                        d, j.queued, j.in_flight, j.delivered, j.dead
                    );
                }
            }
        }
        QueueAction::List {
            state,
            destination,
            limit,
            json,
        } => {
            let state = state
                .map(|s| s.parse::<JobState>().map_err(|e| e.to_string()))
                .transpose()?;
            let jobs = queue
                .list_jobs(&JobFilter {
                    state,
                    destination,
                    limit,
                })
                .map_err(|e| e.to_string())?;
            for j in jobs {
                if json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "id": j.id, "instance": j.instance_id, "destination": j.destination,
                            "state": j.state.as_str(), "attempts": j.attempts,
                            "sop_instance_uid": j.sop_instance_uid,
                            "last_error": j.last_error, "last_status": j.last_status,
                        })
                    );
                } else {
                    println!(
                        "{:>6} {:<10} {:<12} attempts={} {} {}",
                        j.id,
                        j.destination,
                        j.state.as_str(),
                        j.attempts,
                        j.sop_instance_uid,
                        j.last_error.unwrap_or_default()
                    );
                }
            }
        }
        QueueAction::Retry { job: Some(id), .. } => {
            queue.retry_job(id, now).map_err(|e| e.to_string())?;
            println!("job {id} queued again");
        }
        QueueAction::Retry {
            job: None,
            destination,
        } => {
            let n = queue
                .retry_dead(destination.as_deref(), now)
                .map_err(|e| e.to_string())?;
            println!(
                "{n} dead-letter job(s) queued again (dead letters whose files were purged \
                 cannot be retried)"
            );
        }
        QueueAction::Drop { job } => {
            queue.drop_job(job, now).map_err(|e| e.to_string())?;
            println!("job {job} dropped");
        }
    }
    Ok(())
}

/// The error for a queue whose folder does not exist: names it once and says where the
/// running node's folder may come from instead (an environment override, as quickstart sets).
fn missing_spool_hint(dir: &std::path::Path, config: &std::path::Path) -> String {
    format!(
        "no queue here: {} does not exist.\n\
         hint: the folder comes from [spool] dir (or [queue] path) in {}, unless the environment \
         overrides it. If radroute serve runs with RADROUTE__SPOOL__DIR set (deploy/quickstart.sh \
         sets it to .run/spool in the clone), set it here too, e.g.\n  \
         RADROUTE__SPOOL__DIR=$PWD/.run/spool radroute queue counts --config {}",
        dir.display(),
        config.display(),
        config.display()
    )
}
