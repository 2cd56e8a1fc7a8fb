//! A TCP proxy the test controls, between the store and the server: it passes bytes both
//! ways, and when armed it cuts the connection that next sends what commits (a `COMMIT`, or a
//! statement outside a transaction, which commits by itself) at exactly the point the test
//! asks for: before the server sees it, or after the server has it but before its answer
//! reaches the client (a commit whose acknowledgement is lost). Held ([`Proxy::hold`]), it
//! is a link that is down: nothing passes either way and no new connection gets through, but
//! nothing is closed either, and once let go every connection carries on where it stopped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Where an armed proxy cuts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Cut {
    /// What commits never reaches the server.
    BeforeCommit = 1,
    /// The server gets what commits (and commits); its answer never reaches the client.
    AfterCommit = 2,
    /// Nothing more passes either way, and nothing is closed: a link that drops every packet.
    Stall = 3,
}

/// The proxy: listening on `port`, forwarding to the server at `upstream`.
pub(crate) struct Proxy {
    pub(crate) port: u16,
    armed: Arc<AtomicU8>,
    cuts: Arc<AtomicUsize>,
    held: watch::Sender<bool>,
}

/// Waits while the link is held (down).
async fn while_held(held: &mut watch::Receiver<bool>) {
    // The sender lives as long as the proxy; without it nothing is held any more.
    let _ = held.wait_for(|held| !*held).await;
}

impl Proxy {
    /// A proxy in front of the server of `url`, and the URL that reaches it through the proxy:
    /// plain (`sslmode=disable`), so that the proxy reads the protocol to cut at a `COMMIT`.
    pub(crate) async fn before(url: &str) -> (Proxy, String) {
        let config: tokio_postgres::Config = url.parse().expect("a URL");
        let upstream = match (config.get_hosts().first(), config.get_ports().first()) {
            (Some(tokio_postgres::config::Host::Tcp(host)), port) => {
                format!("{host}:{}", port.copied().unwrap_or(5432))
            }
            _ => "127.0.0.1:5432".to_owned(),
        };
        let proxy = Proxy::start(upstream).await;
        let user = config.get_user().unwrap_or("postgres");
        let db = config.get_dbname().unwrap_or("postgres");
        let through = format!(
            "postgres://{user}@127.0.0.1:{}/{db}?sslmode=disable",
            proxy.port
        );
        (proxy, through)
    }

    pub(crate) async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let port = listener.local_addr().expect("an address").port();
        let armed = Arc::new(AtomicU8::new(0));
        let cuts = Arc::new(AtomicUsize::new(0));
        let held = watch::Sender::new(false);
        let (a, c, h) = (Arc::clone(&armed), Arc::clone(&cuts), held.subscribe());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (a, c, mut h) = (Arc::clone(&a), Arc::clone(&c), h.clone());
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    // A connection made while the link is down waits for it, as a SYN
                    // retransmitted until the link comes back.
                    while_held(&mut h).await;
                    if let Ok(server) = TcpStream::connect(&upstream).await {
                        serve(client, server, a, c, h).await;
                    }
                });
            }
        });
        Proxy {
            port,
            armed,
            cuts,
            held,
        }
    }

    /// Takes the link down (`true`: nothing passes, nothing is closed) or brings it back.
    pub(crate) fn hold(&self, down: bool) {
        self.held.send_replace(down);
    }

    /// Cuts the next connection that sends what commits, at `cut`.
    pub(crate) fn arm(&self, cut: Cut) {
        self.armed.store(cut as u8, Ordering::SeqCst);
    }

    /// How many connections the proxy has cut.
    pub(crate) fn cuts(&self) -> usize {
        self.cuts.load(Ordering::SeqCst)
    }
}

async fn serve(
    client: TcpStream,
    server: TcpStream,
    armed: Arc<AtomicU8>,
    cuts: Arc<AtomicUsize>,
    held: watch::Receiver<bool>,
) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let silenced = Arc::new(AtomicU8::new(0));
    let quiet = Arc::clone(&silenced);
    let mut down_held = held.clone();
    let mut up_held = held;
    let downstream = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            while_held(&mut down_held).await;
            if quiet.load(Ordering::SeqCst) != 0 {
                // Swallowed: the client hears nothing, not even the end, until the cut.
                continue;
            }
            if client_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    });
    let mut buf = vec![0u8; 64 * 1024];
    let mut protocol = Protocol::default();
    loop {
        let n = match client_read.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        while_held(&mut up_held).await;
        let chunk = &buf[..n];
        let has_commit = protocol.commits(chunk);
        let cut = armed.load(Ordering::SeqCst);
        if has_commit && cut != 0 && armed.swap(0, Ordering::SeqCst) == cut {
            silenced.store(1, Ordering::SeqCst);
            cuts.fetch_add(1, Ordering::SeqCst);
            if cut == Cut::AfterCommit as u8 {
                let _ = server_write.write_all(chunk).await;
                // Time for the server to commit before the link goes.
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            if cut == Cut::Stall as u8 {
                // Until the client gives up and closes its end.
                let mut sink = vec![0u8; 64 * 1024];
                while let Ok(n) = client_read.read(&mut sink).await {
                    if n == 0 {
                        break;
                    }
                }
            }
            break;
        }
        if server_write.write_all(chunk).await.is_err() {
            break;
        }
    }
    downstream.abort();
    // Dropping both halves closes both links.
}

/// What the client's messages say of its transaction, read as they pass (the store writes
/// whole messages; a chunk holds one or more).
#[derive(Default)]
struct Protocol {
    /// Past the startup message, which has no type byte.
    started: bool,
    /// Inside a `BEGIN`.
    in_transaction: bool,
}

impl Protocol {
    /// Whether `chunk` commits: a `COMMIT`, or a query or `Sync` outside a transaction (a
    /// statement there commits by itself).
    fn commits(&mut self, chunk: &[u8]) -> bool {
        if !self.started {
            self.started = true;
            return false;
        }
        let mut commits = false;
        let mut at = 0;
        while at + 5 <= chunk.len() {
            let kind = chunk[at];
            let length =
                u32::from_be_bytes([chunk[at + 1], chunk[at + 2], chunk[at + 3], chunk[at + 4]])
                    as usize;
            let body = &chunk[(at + 5).min(chunk.len())..(at + 1 + length).min(chunk.len())];
            match kind {
                b'Q' => {
                    let text = String::from_utf8_lossy(body).to_ascii_uppercase();
                    let text = text.trim_start();
                    if text.starts_with("BEGIN") {
                        self.in_transaction = true;
                    }
                    if text.contains("COMMIT") || !self.in_transaction {
                        commits = true;
                        self.in_transaction = false;
                    }
                    if text.starts_with("ROLLBACK") {
                        self.in_transaction = false;
                    }
                }
                b'S' if !self.in_transaction => commits = true,
                _ => {}
            }
            at += 1 + length.max(4);
        }
        commits
    }
}
