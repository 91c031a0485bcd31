//! A loopback TCP proxy for fault injection: cut every open connection, freeze traffic (the
//! peers stay connected but hear nothing), or drop the response to one request.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

struct Shared {
    upstream: SocketAddr,
    connections: Mutex<Vec<JoinHandle<()>>>,
    frozen: watch::Sender<bool>,
    /// The first request containing these bytes gets its connection closed instead of the
    /// response (the upstream still processes it).
    drop_response_to: Mutex<Option<Vec<u8>>>,
}

pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            upstream,
            connections: Mutex::new(Vec::new()),
            frozen: watch::channel(false).0,
            drop_response_to: Mutex::new(None),
        });
        let accept = tokio::spawn({
            let shared = shared.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let task = tokio::spawn(relay(shared.clone(), client));
                    shared.connections.lock().unwrap().push(task);
                }
            }
        });
        Proxy {
            addr,
            shared,
            accept,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every open connection (new ones are accepted as before).
    pub fn cut(&self) {
        for task in self.shared.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// Stops (or resumes) forwarding bytes on every connection, without closing any.
    pub fn freeze(&self, frozen: bool) {
        self.shared.frozen.send_replace(frozen);
    }

    /// Drops the response to the next request containing `needle`.
    pub fn drop_response_to(&self, needle: &[u8]) {
        *self.shared.drop_response_to.lock().unwrap() = Some(needle.to_vec());
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

async fn relay(shared: Arc<Shared>, client: TcpStream) {
    let Ok(server) = TcpStream::connect(shared.upstream).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let cut_response = Arc::new(AtomicBool::new(false));
    let requests = {
        let shared = shared.clone();
        let cut_response = cut_response.clone();
        let mut frozen = shared.frozen.subscribe();
        async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match client_read.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let chunk = &buf[..n];
                {
                    let mut armed = shared.drop_response_to.lock().unwrap();
                    if armed
                        .as_ref()
                        .is_some_and(|needle| chunk.windows(needle.len()).any(|w| w == needle))
                    {
                        *armed = None;
                        cut_response.store(true, Ordering::SeqCst);
                    }
                }
                if frozen.wait_for(|f| !*f).await.is_err()
                    || server_write.write_all(chunk).await.is_err()
                {
                    return;
                }
            }
        }
    };
    let responses = {
        let mut frozen = shared.frozen.subscribe();
        async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match server_read.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if cut_response.load(Ordering::SeqCst) {
                    return;
                }
                if frozen.wait_for(|f| !*f).await.is_err()
                    || client_write.write_all(&buf[..n]).await.is_err()
                {
                    return;
                }
            }
        }
    };
    tokio::select! {
        () = requests => {}
        () = responses => {}
    }
}
