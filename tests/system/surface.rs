//! The HTTP surface against hostile clients (issue 25): no service starts without a cluster
//! token unless told `--insecure`; connections that never finish a request neither block the
//! front-end nor stay open; names, quantities and request ids out of bounds are refused at the
//! door.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use api::Reason;
use api::cli::{ClusterAuth, MISSING_TOKEN};
use api::client::ServiceClient;
use api::cluster::NodeAddrs;
use api::frontend::FrontendClient;
use api::order::{Hop, MAX_ORDER_QUANTITY, PlaceOrder, PlaceOrders, QUANTITY_RULE, TOY_NAME_RULE};
use api::url::parse_base_url;
use system_tests::processes::binaries;
use system_tests::store::{StoreOptions, TestStore};
use system_tests::{free_port, init_logs, start_lone_frontend, wait_for};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Neither a token nor `--insecure`.
fn no_auth() -> ClusterAuth {
    ClusterAuth {
        cluster_token: None,
        insecure: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_without_a_token_or_insecure_refuses_to_start() {
    let dir = tempfile::TempDir::new().expect("a temporary directory");
    let catalog_url = parse_base_url(&format!("http://127.0.0.1:{}", free_port())).unwrap();
    let nodes = NodeAddrs::new([(
        1,
        parse_base_url(&format!("http://127.0.0.1:{}", free_port())).unwrap(),
    )]);

    let mut config = catalog::Config::for_test(dir.path().join("catalog"));
    config.auth = no_auth();
    let refused = catalog::serve(config).await.err().expect("catalog refuses");
    assert_eq!(refused.to_string(), MISSING_TOKEN);

    let mut config = frontend::Config::for_test(catalog_url.clone(), nodes.clone());
    config.auth = no_auth();
    let refused = frontend::serve(config)
        .await
        .err()
        .expect("front-end refuses");
    assert_eq!(refused.to_string(), MISSING_TOKEN);

    let mut config = order_raft::Config::for_test(1, nodes, dir.path().join("node-1"), catalog_url);
    config.auth = no_auth();
    let refused = order_raft::serve(config)
        .await
        .err()
        .expect("replica refuses");
    assert_eq!(refused.to_string(), MISSING_TOKEN);
    // It refused before touching its data directory.
    assert!(!dir.path().join("node-1").exists());
    assert!(!dir.path().join("catalog").exists());
}

/// The real binaries, with the variables unset: each exits non-zero at once, saying why on
/// stderr in one line.
#[test]
fn the_binaries_refuse_to_start_without_a_token_or_insecure() {
    let bin_dir = binaries();
    let data = tempfile::TempDir::new().expect("a temporary directory");
    let port = free_port().to_string();
    let runs: [(&str, Vec<String>); 3] = [
        (
            "catalog",
            vec![
                "--listen".into(),
                format!("127.0.0.1:{port}"),
                "--data-dir".into(),
                data.path().join("catalog").display().to_string(),
            ],
        ),
        (
            "frontend",
            vec!["--listen".into(), format!("127.0.0.1:{port}")],
        ),
        (
            "order-raft",
            vec![
                "--id".into(),
                "1".into(),
                "--nodes".into(),
                format!("1=http://127.0.0.1:{port}"),
                "--data-dir".into(),
                data.path().join("node-1").display().to_string(),
            ],
        ),
    ];
    for (bin, args) in runs {
        let mut child = Command::new(bin_dir.join(bin))
            .args(&args)
            .env_remove("TOYSTORE_CLUSTER_TOKEN")
            .env_remove("TOYSTORE_INSECURE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary runs");
        // A service that started anyway would run until killed: give up at a deadline.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break Some(status);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
        }
        let status = status.unwrap_or_else(|| panic!("{bin} started without a token"));
        assert!(!status.success(), "{bin} exited 0: {stderr}");
        assert!(
            stderr.lines().any(|line| line.contains(MISSING_TOKEN)),
            "{bin} did not say why: {stderr}"
        );
    }
}

/// Raises this process's soft limit on open files to the hard limit, and returns it. The
/// services run in this process, so both ends of every test connection count against it.
fn raise_open_file_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur
}

/// A few thousand connections that each send half a request head and then nothing (the
/// "slowloris" attack): the front-end keeps answering, and closes every one of them. Before
/// issue 25 the server had no timer: they stayed open for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_neither_block_the_front_end_nor_stay_open() {
    init_logs();
    let dir = tempfile::TempDir::new().expect("a temporary directory");
    let catalog_server = catalog::serve(catalog::Config::for_test(dir.path().join("catalog")))
        .await
        .expect("catalog starts");
    let catalog_url = parse_base_url(&catalog_server.url()).unwrap();
    let (frontend_server, _) = start_lone_frontend(&catalog_url).await;
    let addr = frontend_server.addr();

    // Each connection costs two descriptors here (both ends are in this process), and the
    // other tests of this binary run alongside with their RocksDB files and sockets: use at
    // most a third of the limit, and no more than 2 000 connections (below the front-end's
    // cap of 4 096, so that the check below is about time limits, not the cap).
    let limit = raise_open_file_limit();
    let count = usize::try_from(limit / 6).unwrap_or(2_000).min(2_000);
    assert!(
        count >= 100,
        "open-file limit {limit} is too low for this test"
    );
    let mut half_open = Vec::with_capacity(count);
    for _ in 0..count {
        let mut stream = TcpStream::connect(addr).await.expect("connects");
        stream
            .write_all(b"GET /products/Tux HTTP/1.1\r\nhost: frontend\r\nx-slow: ")
            .await
            .expect("half a head is sent");
        half_open.push(stream);
    }

    // Still answering: every attempt may take at most a second, and the whole at most 30 s.
    let quick = FrontendClient::new(
        parse_base_url(&frontend_server.url()).unwrap(),
        ServiceClient::new(Duration::from_secs(1), None),
    );
    let product = wait_for(
        "the front-end to answer while half-open connections are held",
        Duration::from_secs(30),
        || async { quick.product("Tux").await.ok() },
    )
    .await;
    assert_eq!(product.name, "Tux");

    // And every half-open connection is closed by the server (EOF or reset) before the
    // deadline (the header timeout is 10 s).
    let deadline = Instant::now() + Duration::from_secs(90);
    let closed = futures::future::join_all(half_open.into_iter().map(|mut stream| async move {
        let mut buf = [0u8; 512];
        loop {
            match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => {}
                Err(_) => return false,
            }
        }
    }))
    .await;
    let still_open = closed.iter().filter(|closed| !**closed).count();
    assert_eq!(
        still_open, 0,
        "{still_open} of {count} half-open connections were never closed"
    );
    // The front-end answers after all that, too.
    assert!(quick.product("Tux").await.is_ok());
    let _ = frontend_server.shutdown().await;
    let _ = catalog_server.shutdown().await;
}

/// One raw HTTP/1.1 exchange (exact bytes on the wire, as a hostile client sends them):
/// the status, the head and the body of the answer.
async fn raw(addr: SocketAddr, request: &str) -> (u16, String, String) {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.expect("connects");
        stream.write_all(request.as_bytes()).await.expect("sends");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.expect("reads");
        answer
    };
    let answer = tokio::time::timeout(Duration::from_secs(15), exchange)
        .await
        .expect("an answer within 15 s");
    let text = String::from_utf8_lossy(&answer).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_lowercase(), body.to_string())
}

fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nhost: frontend\r\nconnection: close\r\n{extra}\r\n")
}

fn post_order(key: &str, body: &str) -> String {
    format!(
        "POST /orders HTTP/1.1\r\nhost: frontend\r\nconnection: close\r\nidempotency-key: {key}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_out_of_bounds_is_refused_before_the_catalog_and_the_log() {
    let store = TestStore::start(StoreOptions {
        frontend: true,
        ..Default::default()
    })
    .await;
    let leader = store.leader().await;
    let frontend = store.frontend_url();
    let addr: SocketAddr = format!(
        "{}:{}",
        frontend.host_str().unwrap(),
        frontend.port().unwrap()
    )
    .parse()
    .unwrap();
    let tux_before = store.product("Tux").await.quantity;

    // Names that cannot travel as one path segment to the catalog (they used to come back
    // as a 503 from a request to another catalog route), and names too long.
    let long = "x".repeat(300);
    for path in [
        "/products/..".to_string(),
        "/products/%2E%2E".to_string(),
        "/products/.".to_string(),
        "/products/a%2Fb".to_string(),
        "/products/Tux%0Aforged".to_string(),
        format!("/products/{long}"),
    ] {
        let (status, _, body) = raw(addr, &get(&path, "")).await;
        assert_eq!(status, 400, "GET {path}: {body}");
        let body: serde_json::Value = serde_json::from_str(&body).expect("the envelope");
        assert_eq!(body["error"]["code"], 400, "GET {path}");
    }
    let (status, _, _) = raw(addr, &get("/products/Tux", "")).await;
    assert_eq!(status, 200);

    // Orders out of bounds at the front-end: refused for what they are (not "out of stock"
    // from the catalog), and nothing reaches a replica or the catalog.
    let refused_orders = [
        (
            "front-too-many",
            format!(r#"{{"name":"Tux","quantity":{}}}"#, MAX_ORDER_QUANTITY + 1),
            QUANTITY_RULE,
        ),
        (
            "front-none",
            r#"{"name":"Tux","quantity":0}"#.to_string(),
            QUANTITY_RULE,
        ),
        (
            "front-dots",
            r#"{"name":"..","quantity":1}"#.to_string(),
            TOY_NAME_RULE,
        ),
        (
            "front-long",
            format!(r#"{{"name":"{long}","quantity":1}}"#),
            TOY_NAME_RULE,
        ),
    ];
    for (key, order, rule) in &refused_orders {
        let (status, _, body) = raw(addr, &post_order(key, order)).await;
        assert_eq!(status, 400, "{order}: {body}");
        let body: serde_json::Value = serde_json::from_str(&body).expect("the envelope");
        assert_eq!(body["error"]["message"], *rule, "{order}");
    }
    // At the replica too, alone or inside a batch whose other orders go on.
    let refused = store
        .place(leader, "too-many", "Tux", MAX_ORDER_QUANTITY + 1)
        .await
        .expect_err("the replica refuses");
    assert_eq!(refused.status_code(), 400);
    assert_eq!(refused.reason(), Some(Reason::BadRequest), "{refused}");
    let answers = store
        .replica(leader)
        .place_many(
            &PlaceOrders {
                orders: vec![
                    PlaceOrder {
                        request_id: "in-bounds".into(),
                        name: "Tux".into(),
                        quantity: 1,
                    },
                    PlaceOrder {
                        request_id: "out-of-bounds".into(),
                        name: "Tux".into(),
                        quantity: MAX_ORDER_QUANTITY + 1,
                    },
                ],
            },
            Hop::default(),
        )
        .await
        .expect("the batch is answered");
    assert!(answers[0].is_ok(), "{:?}", answers[0]);
    assert_eq!(
        answers[1].as_ref().err().map(|e| e.message.as_str()),
        Some(QUANTITY_RULE)
    );
    assert_eq!(
        store.product("Tux").await.quantity,
        tux_before - 1,
        "only the order in bounds took stock"
    );
    let stock = store.catalog.stock().await.expect("the stock");
    let tux = stock.iter().find(|toy| toy.name == "Tux").expect("Tux");
    assert!(tux.pending + u64::from(tux.quantity) <= tux.initial + tux.restocked);
    // The catalog never saw a reservation for any of them.
    let records = store
        .catalog
        .all_reservation_records()
        .await
        .expect("the records");
    let reached: Vec<&str> = records
        .records
        .iter()
        .map(|record| record.id.request_id.as_str())
        .filter(|id| {
            ["too-many", "out-of-bounds"].contains(id)
                || refused_orders.iter().any(|(key, _, _)| key == id)
        })
        .collect();
    assert!(reached.is_empty(), "reached the catalog: {reached:?}");

    // A client's request id is kept only when it follows the rules; otherwise the answer
    // (and every log line and forwarded call) carries a fresh one.
    let (_, head, _) = raw(addr, &get("/products/Tux", "x-request-id: shopper-42\r\n")).await;
    assert!(head.contains("x-request-id: shopper-42\r\n"), "{head}");
    let oversized = "r".repeat(4_000);
    let (status, head, _) = raw(
        addr,
        &get("/products/Tux", &format!("x-request-id: {oversized}\r\n")),
    )
    .await;
    assert_eq!(status, 200);
    let answered = head
        .lines()
        .find_map(|line| line.strip_prefix("x-request-id: "))
        .expect("a request id");
    assert!(
        !answered.is_empty() && answered.len() <= 128 && answered != oversized,
        "{answered}"
    );
    store.shutdown().await;
}
