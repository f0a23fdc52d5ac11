//! A TCP proxy a test puts between a client and a real server, so it can cut every connection
//! (a broker restart as the client sees it) or refuse new ones for a while (a broker that is down).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

struct State {
    accepting: AtomicBool,
    links: Mutex<Vec<AbortHandle>>,
}

/// A running proxy; dropping it stops the listener and cuts every link.
pub struct TcpProxy {
    pub addr: SocketAddr,
    state: Arc<State>,
    listener: AbortHandle,
}

impl TcpProxy {
    /// Listens on a free loopback port and forwards to `target`.
    pub async fn start(target: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            accepting: AtomicBool::new(true),
            links: Mutex::new(Vec::new()),
        });
        let st = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !st.accepting.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                st.links
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(link.abort_handle());
            }
        });
        Ok(TcpProxy {
            addr,
            state,
            listener: task.abort_handle(),
        })
    }

    /// Cuts every open connection.
    pub fn kill_all(&self) {
        for link in self
            .state
            .links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            link.abort();
        }
    }

    /// While false, new connections are closed at once (the server looks down).
    pub fn set_accepting(&self, on: bool) {
        self.state.accepting.store(on, Ordering::SeqCst);
    }

    /// `url` with its host:port replaced by the proxy's.
    pub fn rewrite_url(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        let (userinfo, hostpath) = match rest.rsplit_once('@') {
            Some((u, h)) => (format!("{u}@"), h),
            None => (String::new(), rest),
        };
        let path = hostpath
            .find(['/', '?'])
            .map(|i| &hostpath[i..])
            .unwrap_or("");
        format!("{scheme}://{userinfo}{}{path}", self.addr)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.listener.abort();
        self.kill_all();
    }
}
