//! TLS with libpq's `sslmode` values, against a throwaway server of the test's own that offers
//! TLS with a certificate for `localhost` signed by a CA the test made (openssl).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use sagaflow_core::runtime::StoreError;
use sagaflow_postgres::{PgOptions, PgStore};
use support::server::TempServer;

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA (`<name>.pem`) in `dir`; for `signs`, a server certificate and key for `localhost`.
fn ca(dir: &Path, name: &str, signs: bool) {
    let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &pem,
            "-days",
            "2",
            "-subj",
            "/CN=sagaflow test CA",
        ],
    );
    if signs {
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                &pem,
                "-CAkey",
                &key,
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
            ],
        );
        let mut mode = std::fs::metadata(dir.join("server.key"))
            .unwrap()
            .permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut mode, 0o600);
        std::fs::set_permissions(dir.join("server.key"), mode).unwrap();
    }
}

/// The server, and the directory of its certificates (`ca.pem` signed the server's;
/// `other.pem` is a CA that signed nothing of it).
fn tls_server() -> (TempServer, PathBuf) {
    let mut certs = PathBuf::new();
    let server = TempServer::start_with(|dir| {
        let dir = dir.join("certs");
        std::fs::create_dir(&dir).unwrap();
        ca(&dir, "ca", true);
        ca(&dir, "other", false);
        certs = dir.clone();
        vec![
            ("ssl", "on".to_owned()),
            (
                "ssl_cert_file",
                dir.join("server.pem").display().to_string(),
            ),
            ("ssl_key_file", dir.join("server.key").display().to_string()),
        ]
    });
    (server, certs)
}

/// Whether every connection of the store (`application_name` sagaflow) is encrypted, and how
/// many there are.
async fn encrypted(url: &str) -> (bool, i64) {
    let plain = format!("{url}?sslmode=disable");
    let (client, connection) = tokio_postgres::connect(&plain, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT COALESCE(bool_and(s.ssl), false), count(*) FROM pg_stat_ssl s \
             JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'sagaflow'",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

async fn connects(url: &str) -> Result<PgStore, StoreError> {
    PgStore::connect(url, PgOptions::default()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_is_honoured_as_libpq_does() {
    if support::server().await.is_none() {
        return;
    }
    let (server, certs) = tls_server();
    let port = server.port;
    let root = |name: &str| certs.join(name).display().to_string();

    // verify-full: the chain and the host name; every connection of the store is encrypted.
    let url = format!(
        "postgres://postgres@localhost:{port}/postgres?sslmode=verify-full&sslrootcert={}",
        root("ca.pem")
    );
    let store = connects(&url).await.expect("verify-full with the right CA");
    sagaflow_core::conformance::runs::create(&store, "r", "W")
        .await
        .unwrap();
    let (all, count) = encrypted(&format!("postgres://postgres@127.0.0.1:{port}/postgres")).await;
    assert!(all && count >= 2, "encrypted: {all}, connections: {count}");
    drop(store);

    // verify-full to 127.0.0.1: the certificate is for localhost only.
    let url = format!(
        "postgres://postgres:s3cret@127.0.0.1:{port}/postgres?sslmode=verify-full&sslrootcert={}",
        root("ca.pem")
    );
    let error = connects(&url).await.unwrap_err().to_string();
    assert!(error.contains("cannot connect"), "{error}");
    assert!(!error.contains("s3cret"), "{error}");
    // verify-ca: the chain alone, so 127.0.0.1 is fine.
    let url = format!(
        "postgres://postgres@127.0.0.1:{port}/postgres?sslmode=verify-ca&sslrootcert={}",
        root("ca.pem")
    );
    connects(&url).await.expect("verify-ca checks no host name");
    // A CA that signed nothing of the server's is refused, even with verify-ca.
    let url = format!(
        "postgres://postgres@localhost:{port}/postgres?sslmode=verify-ca&sslrootcert={}",
        root("other.pem")
    );
    assert!(connects(&url).await.is_err(), "another CA's trust");
    // require: encrypted, nothing checked; disable: plain.
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres?sslmode=require");
    connects(&url).await.expect("require");
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres?sslmode=disable");
    let plain = connects(&url).await.expect("disable");
    sagaflow_core::conformance::runs::create(&plain, "p", "W")
        .await
        .unwrap();
    let (all, _) = encrypted(&format!("postgres://postgres@127.0.0.1:{port}/postgres")).await;
    assert!(!all, "sslmode=disable connections are plain");
    // A root file that is not there is an error naming it, before any connection.
    let url = format!(
        "postgres://postgres@localhost:{port}/postgres?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"
    );
    let error = connects(&url).await.unwrap_err().to_string();
    assert!(error.contains("/nonexistent/ca.pem"), "{error}");
}
