//! The store step of cluster mode ([`crate::store::Ingest`]): the instance bytes and its queue
//! row are written in ONE PostgreSQL transaction (radroute-store-postgres' `put_with` running
//! radroute-queue-pg's `insert_instance` inside it), committed with `synchronous_commit = on`
//! before the C-STORE success is sent. A failure rolls both back: the store is refused with
//! A700 and nothing is left behind.

use std::sync::Arc;

use radroute_queue::NewInstance;
use radroute_spool::{FileKind, InstanceId};
use radroute_store_postgres::PgStore;

use crate::store::Ingest;

/// Bytes and instance row in one transaction, `received_by` = this node.
pub(crate) struct ClusterIngest {
    pub(crate) store: Arc<PgStore>,
    pub(crate) node_id: String,
}

impl Ingest for ClusterIngest {
    fn ingest(
        &self,
        id: &InstanceId,
        parts: &[&[u8]],
        row: &NewInstance,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let (row, node) = (row.clone(), self.node_id.clone());
        self.store
            .put_with(FileKind::Incoming, id, parts, move |tx| {
                Box::pin(async move {
                    radroute_queue_pg::insert_instance(tx, &row, &node)
                        .await
                        .map_err(Into::into)
                })
            })
            .map_err(Into::into)
    }
}
