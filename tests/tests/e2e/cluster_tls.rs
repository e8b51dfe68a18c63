//! Cluster mode over TLS to PostgreSQL (`[cluster] ca_file`): every connection a node opens is
//! encrypted, the server's certificate is verified (a node given another CA does not start),
//! and `sslmode=require` without a CA is refused by check-config, since radroute never talks
//! TLS without verifying the server.

use std::path::Path;
use std::time::Duration;

use radroute_e2e::dcmtk::storescu;
use radroute_e2e::ports::free_port;
use radroute_e2e::postgres::{PgOptions, PgServer, ServerTls};
use radroute_e2e::radroute::{run_cli, Config, Radroute};
use radroute_e2e::tls::Pki;
use radroute_e2e::{gen_corpus, wait_for};

use super::cluster_support::{cluster_toml, pacs};

/// A node configuration on `url` with `ca_file` (if any) in its `[cluster]` section.
fn config(url: &str, ca: Option<&Path>, pacs_port: u16) -> Config {
    let mut config = Config::default().destination("pacs", "PACS", pacs_port);
    config.extra = cluster_toml(url, "n1");
    if let Some(ca) = ca {
        config
            .extra
            .push_str(&format!("ca_file = {:?}\n", ca.display().to_string()));
    }
    config
}

#[test]
fn cluster_talks_tls_to_postgresql_and_verifies_the_server() {
    let dir = radroute_e2e::test_dir("cluster-tls");
    let d = dir.path();
    let pki = Pki::new(&d.join("pki"));
    let (key, cert) = pki.leaf("postgres");
    let pg = PgServer::start_with(PgOptions {
        tls: Some(ServerTls { cert, key }),
        ..PgOptions::default()
    });
    let url = format!("{}?sslmode=require", pg.new_database());
    let db = url
        .rsplit('/')
        .next()
        .and_then(|s| s.split('?').next())
        .expect("database name")
        .to_string();
    let sink = pacs(&d.join("pacs"), free_port());

    // sslmode=require without a CA to verify the server against: refused before anything runs.
    let no_ca = d.join("no-ca.toml");
    std::fs::write(&no_ca, config(&url, None, sink.port).to_toml(d)).expect("write");
    let (code, out) = run_cli(&["check-config"], &no_ca);
    assert_eq!(
        code,
        Some(1),
        "check-config accepted sslmode=require without ca_file:\n{out}"
    );
    assert!(out.contains("cluster.ca_file"), "{out}");

    // A CA that did not sign the server's certificate: the node does not start.
    let other = Pki::new(&d.join("other-pki"));
    let wrong = d.join("wrong-ca.toml");
    std::fs::write(&wrong, config(&url, Some(&other.ca), sink.port).to_toml(d)).expect("write");
    let (code, out) = run_cli(&["serve", "--config"], &wrong);
    assert_ne!(code, Some(0), "a node trusting another CA started:\n{out}");
    assert!(
        out.to_ascii_lowercase().contains("certificate"),
        "the refusal should name the certificate:\n{out}"
    );
    assert!(!out.contains("panicked"), "{out}");

    // The right CA: the node stores and forwards, over encrypted connections only.
    std::fs::create_dir_all(d.join("n1")).expect("node dir");
    let node = Radroute::start(&d.join("n1"), config(&url, Some(&pki.ca), sink.port));
    let corpus = gen_corpus(&d.join("corpus"), 3, 64, 64, 1313);
    let files: Vec<_> = corpus.iter().map(|f| f.path.clone()).collect();
    let run = storescu("RADROUTE", node.dicom_port, &[], &files);
    assert_eq!(
        run.succeeded().len(),
        files.len(),
        "stores over the TLS-backed node: {}",
        run.log
    );
    let expected: std::collections::BTreeSet<String> =
        corpus.iter().map(|f| f.sop_instance_uid.clone()).collect();
    wait_for(
        Duration::from_secs(60),
        Duration::from_millis(200),
        || (sink.received() == expected).then_some(()),
        || format!("all 3 delivered: {}", node.log_tail(20)),
    );
    let connections = |ssl: bool| -> u32 {
        pg.psql(
            &db,
            &format!(
                "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
                 WHERE a.application_name = 'radroute' AND s.ssl = {ssl}"
            ),
        )
        .trim()
        .parse()
        .expect("a count")
    };
    assert!(connections(true) > 0, "no encrypted radroute connection");
    assert_eq!(connections(false), 0, "a radroute connection without TLS");
}
