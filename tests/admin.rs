//! The opt-in admin endpoint: off by default, its own loopback listener,
//! a bearer token, and never reachable through the application's router.
#![allow(clippy::unwrap_used)]

mod common;

use std::{collections::HashMap, net::SocketAddr};

use common::{InProc, echo_router, quick_policy};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use wsdrain::{
    Phase,
    axum::{AdminConfig, admin::AdminConfigError},
};

const TOKEN: &str = "0123456789abcdef-secret";

async fn post(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.unwrap();
    let status = buf.split(' ').nth(1).unwrap().parse().unwrap();
    (status, buf)
}

fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

#[test]
fn off_by_default_and_loopback_only() {
    assert_eq!(
        AdminConfig::from_lookup(lookup(&[])).unwrap(),
        None,
        "off unless a token is set"
    );
    let on = AdminConfig::from_lookup(lookup(&[("WSDRAIN_ADMIN_TOKEN", TOKEN)]))
        .unwrap()
        .unwrap();
    assert!(on.listen.ip().is_loopback());
    let err = AdminConfig::from_lookup(lookup(&[
        ("WSDRAIN_ADMIN_TOKEN", TOKEN),
        ("WSDRAIN_ADMIN_LISTEN", "0.0.0.0:9901"),
    ]))
    .unwrap_err();
    assert!(matches!(err, AdminConfigError::NotLoopback(_)));
    assert!(err.to_string().contains("WSDRAIN_ADMIN_LISTEN"), "{err}");
    let public = AdminConfig::from_lookup(lookup(&[
        ("WSDRAIN_ADMIN_TOKEN", TOKEN),
        ("WSDRAIN_ADMIN_LISTEN", "0.0.0.0:9901"),
        ("WSDRAIN_ADMIN_PUBLIC", "1"),
    ]))
    .unwrap()
    .unwrap();
    assert!(
        public.listen.ip().is_unspecified(),
        "public only when asked"
    );
    let weak = AdminConfig::from_lookup(lookup(&[("WSDRAIN_ADMIN_TOKEN", "short")])).unwrap_err();
    assert!(weak.to_string().contains("WSDRAIN_ADMIN_TOKEN"), "{weak}");
    let bad = AdminConfig::from_lookup(lookup(&[
        ("WSDRAIN_ADMIN_TOKEN", TOKEN),
        ("WSDRAIN_ADMIN_LISTEN", "here"),
    ]))
    .unwrap_err();
    assert!(bad.to_string().contains("WSDRAIN_ADMIN_LISTEN"), "{bad}");
}

#[test]
fn public_is_a_boolean_and_every_bad_setting_is_reported_at_once() {
    let public = |v: &str| {
        AdminConfig::from_lookup(lookup(&[
            ("WSDRAIN_ADMIN_TOKEN", TOKEN),
            ("WSDRAIN_ADMIN_LISTEN", "0.0.0.0:9901"),
            ("WSDRAIN_ADMIN_PUBLIC", v),
        ]))
    };
    for yes in ["1", "true", "yes", "on", "YES", " On "] {
        assert!(
            public(yes).unwrap().is_some(),
            "{yes:?} allows a public address"
        );
    }
    for no in ["0", "false", "no", "off", "No"] {
        assert!(
            matches!(public(no), Err(AdminConfigError::NotLoopback(_))),
            "{no:?}"
        );
    }
    assert_eq!(
        public("maybe").unwrap_err().to_string(),
        r#"WSDRAIN_ADMIN_PUBLIC: "maybe" is not a boolean (write 1, true, yes, on or 0, false, no, off)"#
    );
    assert_eq!(
        public("").unwrap_err(),
        AdminConfigError::InvalidPublic(String::new()),
        "empty is refused, not read as no"
    );
    let all = AdminConfig::from_lookup(lookup(&[
        ("WSDRAIN_ADMIN_TOKEN", ""),
        ("WSDRAIN_ADMIN_LISTEN", "here"),
        ("WSDRAIN_ADMIN_PUBLIC", "maybe"),
    ]))
    .unwrap_err();
    assert_eq!(all.errors().len(), 3);
    assert_eq!(
        all.to_string(),
        "3 settings refused:\n  \
         WSDRAIN_ADMIN_TOKEN: the token must be at least 16 bytes\n  \
         WSDRAIN_ADMIN_LISTEN: invalid address \"here\"\n  \
         WSDRAIN_ADMIN_PUBLIC: \"maybe\" is not a boolean (write 1, true, yes, on or 0, false, no, off)"
    );
}

#[tokio::test]
async fn drain_needs_the_token_and_its_own_listener() {
    let s = InProc::start(quick_policy().build().unwrap(), echo_router()).await;
    let config = AdminConfig::new("127.0.0.1:0".parse().unwrap(), TOKEN, false).unwrap();
    let admin = tokio::net::TcpListener::bind(config.listen).await.unwrap();
    let admin_addr = admin.local_addr().unwrap();
    let router = config.router(s.controller.trigger());
    let admin_task = tokio::spawn(async move { axum::serve(admin, router).await });

    // Not on the public router.
    let (status, _) = post(s.addr, "/drain", Some(TOKEN)).await;
    assert_eq!(status, 404);
    // Not without the right token.
    assert_eq!(post(admin_addr, "/drain", None).await.0, 401);
    assert_eq!(
        post(admin_addr, "/drain", Some("0123456789abcdef-wrong!"))
            .await
            .0,
        401
    );
    assert_eq!(post(admin_addr, "/drain", Some(&TOKEN[..10])).await.0, 401);
    assert_eq!(s.drain.phase(), Phase::Serving, "nothing was triggered");

    let (status, body) = post(admin_addr, "/drain", Some(TOKEN)).await;
    assert_eq!(status, 202, "{body}");
    assert!(body.contains(r#""phase":"draining""#), "{body}");
    assert!(s.drain.phase() >= Phase::Draining);
    assert_eq!(
        post(admin_addr, "/drain", Some(TOKEN)).await.0,
        200,
        "already draining"
    );
    let report = s.report().await;
    assert!(report.is_clean());
    admin_task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_echo_example_drains_on_an_admin_post() {
    // A free loopback port for the admin listener.
    let admin_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let listen = admin_addr.to_string();
    let mut server = common::Server::start(
        "echo",
        &[
            ("WSDRAIN_ADMIN_TOKEN", TOKEN),
            ("WSDRAIN_ADMIN_LISTEN", &listen),
        ],
        &[],
    );
    let posted = loop {
        match TcpStream::connect(admin_addr).await {
            Ok(_) => break post(admin_addr, "/drain", Some(TOKEN)).await,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    };
    assert_eq!(posted.0, 202, "{}", posted.1);
    let (code, _) = server.wait_exit(std::time::Duration::from_secs(10));
    assert_eq!(code, Some(0));
    let report = server.rest().join("\n");
    assert!(report.contains("drain by begin()"), "{report}");
}

#[test]
fn a_bad_admin_setting_exits_2_naming_it() {
    let out = std::process::Command::new(common::example("echo"))
        .args(["--listen", "127.0.0.1:0"])
        .env("WSDRAIN_ADMIN_TOKEN", TOKEN)
        .env("WSDRAIN_ADMIN_LISTEN", "0.0.0.0:9901")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("WSDRAIN_ADMIN_LISTEN"), "{stderr}");
}
