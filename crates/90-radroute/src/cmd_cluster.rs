//! `radroute migrate` and `radroute cluster status`: the operator's commands of cluster mode.
//! Both read `[cluster]` from the configuration and talk to PostgreSQL directly, so they work
//! while every node is stopped (migrate before a rolling upgrade; status when HAProxy shows
//! nodes down).

use std::time::Duration;

use radroute_config::cluster::ClusterConfig;
use radroute_config::Config;
use radroute_node::cluster;

use crate::cli::ClusterAction;

fn cluster_of(cfg: &Config) -> Result<&ClusterConfig, String> {
    cfg.cluster.as_ref().ok_or_else(|| {
        format!(
            "{}: no [cluster] section (or RADROUTE__CLUSTER__POSTGRES): this is a single node",
            cfg.source.display()
        )
    })
}

/// Runs `work` with a pool to the cluster database on a small runtime of its own.
fn with_pool<T>(
    cfg: &Config,
    c: &ClusterConfig,
    work: impl FnOnce(
        deadpool_postgres::Pool,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, String>>>>,
) -> Result<T, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        let pool = {
            let mut pg = cluster::pg_config(cfg, c).map_err(|e| e.to_string())?;
            pg.pool_size = 2;
            pg.pool()
                .map_err(|e| format!("cluster database {}: {e}", c.redacted_url()))?
        };
        work(pool).await
    })
}

/// `radroute migrate`: applies every pending migration (queue, instance storage). Idempotent;
/// nodes also apply them at start.
pub fn migrate(cfg: &Config) -> Result<(), String> {
    let c = cluster_of(cfg)?.clone();
    let url = c.redacted_url();
    with_pool(cfg, &c.clone(), move |pool| {
        Box::pin(async move { cluster::migrate(&c, &pool).await.map_err(|e| e.to_string()) })
    })?;
    println!("{url}: schema up to date");
    Ok(())
}

/// `radroute cluster ...`.
pub fn run(cfg: &Config, action: ClusterAction) -> Result<(), String> {
    let c = cluster_of(cfg)?.clone();
    match action {
        ClusterAction::Status { json } => {
            let (node_id, takeover) = (c.node_id(), Duration::from_secs(c.takeover_after_secs));
            let status = with_pool(cfg, &c, move |pool| {
                Box::pin(async move { cluster::read_status(&pool, &node_id, takeover).await })
            })?;
            if json {
                let text = serde_json::to_string_pretty(&status).map_err(|e| e.to_string())?;
                println!("{text}");
            } else {
                print!("{}", status.table());
            }
            Ok(())
        }
    }
}
