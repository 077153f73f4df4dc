//! The Kubernetes kit in `examples/kubernetes/` parses, and its timings agree
//! with the drain policy's defaults.
#![allow(clippy::unwrap_used)]

use std::{path::PathBuf, time::Duration};

use serde_yaml::Value;
use wsdrain::{DrainPolicy, policy::defaults, policy::parse_duration};

fn manifest(name: &str) -> Value {
    // This package lives in the repository's `tests/`.
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/kubernetes")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn container(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]["containers"][0]
}

fn env(deployment: &Value, name: &str) -> Option<String> {
    container(deployment)["env"]
        .as_sequence()?
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str())
        .map(str::to_owned)
}

fn secs(v: &Value) -> Duration {
    Duration::from_secs(v.as_u64().unwrap_or_else(|| panic!("not a number: {v:?}")))
}

#[test]
fn manifests_parse_and_have_the_expected_kinds() {
    let d = manifest("deployment.yaml");
    assert_eq!(d["apiVersion"], "apps/v1");
    assert_eq!(d["kind"], "Deployment");
    let s = manifest("service.yaml");
    assert_eq!(s["apiVersion"], "v1");
    assert_eq!(s["kind"], "Service");
    let p = manifest("pdb.yaml");
    assert_eq!(p["apiVersion"], "policy/v1");
    assert_eq!(p["kind"], "PodDisruptionBudget");

    // One set of labels ties them together.
    let labels = &d["spec"]["template"]["metadata"]["labels"];
    assert_eq!(&d["spec"]["selector"]["matchLabels"], labels);
    assert_eq!(&s["spec"]["selector"], labels);
    assert_eq!(&p["spec"]["selector"]["matchLabels"], labels);
    assert_eq!(
        s["spec"]["ports"][0]["targetPort"],
        container(&d)["ports"][0]["name"]
    );
}

#[test]
fn rolling_update_surges_one_and_keeps_every_replica() {
    let d = manifest("deployment.yaml");
    let strategy = &d["spec"]["strategy"];
    assert_eq!(strategy["type"], "RollingUpdate");
    assert_eq!(strategy["rollingUpdate"]["maxSurge"].as_u64(), Some(1));
    assert_eq!(
        strategy["rollingUpdate"]["maxUnavailable"].as_u64(),
        Some(0)
    );
    assert_eq!(
        manifest("pdb.yaml")["spec"]["maxUnavailable"].as_u64(),
        Some(1)
    );
}

#[test]
fn probes_point_at_readyz_and_livez_and_no_prestop_sleep() {
    let d = manifest("deployment.yaml");
    let c = container(&d);
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/livez");
    assert_eq!(
        c["readinessProbe"]["httpGet"]["port"],
        c["ports"][0]["name"]
    );
    // The library waits drain_delay itself; a preStop sleep would spend the
    // grace period twice.
    assert!(c["lifecycle"]["preStop"].is_null(), "{:?}", c["lifecycle"]);
    // A load balancer probing the pod directly sees the 503 before the
    // first close: period × failureThreshold within the drain delay.
    let r = &c["readinessProbe"];
    let noticed = secs(&r["periodSeconds"]) * r["failureThreshold"].as_u64().unwrap() as u32;
    assert!(noticed < defaults::DRAIN_DELAY, "{noticed:?}");
}

#[test]
fn timings_agree_with_the_policy_defaults() {
    let d = manifest("deployment.yaml");
    let grace = secs(&d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]);
    assert_eq!(grace, defaults::GRACE_PERIOD);

    // The env the pod gets, read by the library's own parser, in a pod.
    let policy = DrainPolicy::builder()
        .kubernetes(true)
        .env(|name| env(&d, name))
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(policy.grace_period(), grace);
    assert_eq!(policy.drain_delay(), defaults::DRAIN_DELAY);
    assert_eq!(policy.close_window(), defaults::CLOSE_WINDOW);
    assert_eq!(policy.close_timeout(), defaults::CLOSE_TIMEOUT);
    assert_eq!(policy.retry_after_min(), defaults::RETRY_AFTER_MIN);
    assert_eq!(policy.retry_after_max(), defaults::RETRY_AFTER_MAX);
    // Written as the defaults, and the same as the policy with no env at all.
    assert_eq!(
        policy,
        DrainPolicy::builder().kubernetes(true).build().unwrap()
    );

    // The budget of docs/KUBERNETES.md: the slowest session is done 5 + 12 +
    // 2 × 5 = 27 s after SIGTERM (its turn, its close handshake, its handler's
    // grace), the forced end comes at 28 s, SIGKILL at 30 s.
    let busy = policy.drain_delay() + policy.close_window() + 2 * policy.close_timeout();
    assert_eq!(busy, Duration::from_secs(27));
    assert_eq!(policy.deadline(), Duration::from_secs(28));
    assert!(busy <= policy.deadline() && policy.deadline() < grace);

    // Every WSDRAIN_ duration in the manifest is one the library parses.
    for e in container(&d)["env"].as_sequence().unwrap() {
        let name = e["name"].as_str().unwrap();
        if name.starts_with("WSDRAIN_") && name != "WSDRAIN_CLOSE_CODE" {
            let v = e["value"].as_str().unwrap();
            assert!(parse_duration(v).is_some(), "{name}={v}");
        }
    }
}
