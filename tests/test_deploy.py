"""The deployment files parse and keep their promises (no docker engine or Kubernetes here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml  # PyYAML: a dependency of ray

import mc_hull

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
IMAGE = f"mc-hull:{mc_hull.__version__}"


def load_all(name: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all((DEPLOY / name).read_text()) if doc]


def walk(node):
    """Every mapping inside a parsed YAML document."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def containers(doc) -> list[dict]:
    return [c for m in walk(doc) for c in m.get("containers", []) if isinstance(c, dict)]


def test_dockerfile_slim_pinned_non_root_and_versioned():
    text = (DEPLOY / "Dockerfile").read_text()
    base = re.search(r"^FROM\s+(\S+)", text, re.M).group(1)
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", base), base
    pins = re.findall(r'"([A-Za-z0-9_.\-\[\]]+)([=<>~!]=?)([^"]*)"', text)
    assert pins and all(op == "==" for _, op, _ in pins), pins
    assert {"ray[default]", "numpy", "scipy", "highspy", "pyarrow", "duckdb"} <= {p for p, _, _ in pins}
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert f'image.version="{mc_hull.__version__}"' in text and f"-t {IMAGE}" in text
    assert "--shm-size" in text and "/dev/shm" in text
    assert not re.search(r"^EXPOSE", text, re.M)


@pytest.mark.parametrize("name", ["raycluster.yaml", "rayjob.yaml", "rayjob-hulltest.yaml"])
def test_kuberay_manifests(name):
    docs = load_all(name)
    kinds = [d["kind"] for d in docs]
    main = next(d for d in docs if d["kind"] in ("RayCluster", "RayJob"))
    assert main["apiVersion"] == "ray.io/v1"
    cluster = main["spec"] if main["kind"] == "RayCluster" else main["spec"]["rayClusterSpec"]
    assert cluster["headGroupSpec"]["serviceType"] == "ClusterIP"
    for doc in docs:  # nothing exposes the job API / dashboard outside the cluster
        for m in walk(doc):
            assert m.get("type") not in ("LoadBalancer", "NodePort")
            assert m.get("serviceType", "ClusterIP") == "ClusterIP"
    pods = [cluster["headGroupSpec"]["template"]] + [g["template"] for g in cluster["workerGroupSpecs"]]
    for pod in pods:
        spec = pod["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        shm = [v["name"] for v in spec["volumes"] if v.get("emptyDir", {}).get("medium") == "Memory"]
        for c in spec["containers"]:
            assert c["image"] == IMAGE
            assert {"name": shm[0], "mountPath": "/dev/shm"} in c["volumeMounts"]
            assert "requests" in c["resources"] and "limits" in c["resources"]
            env = {e["name"]: e for e in c["env"]}
            assert env["RAY_AUTH_MODE"]["value"] == "token" and "secretKeyRef" in env["RAY_AUTH_TOKEN"]["valueFrom"]
    assert all(c["image"] == IMAGE for d in docs for c in containers(d))
    if main["kind"] == "RayJob" and name == "rayjob-hulltest.yaml":
        entry = main["spec"]["entrypoint"]
        assert entry.startswith("mc-hull hull-test --train s3://") and "--out s3://" in entry
        assert "--measure distance" in entry
    elif main["kind"] == "RayJob":
        assert main["spec"]["entrypoint"].startswith("mc-hull run ")
        assert "--out s3://" in main["spec"]["entrypoint"]
        assert "ConfigMap" in kinds
    else:
        assert "NetworkPolicy" in kinds


def test_cluster_launcher_config():
    (cfg,) = load_all("cluster-launcher.yaml")
    assert cfg["docker"]["image"] == IMAGE
    assert any(o.startswith("--shm-size") for o in cfg["docker"]["run_options"])
    head = " ".join(cfg["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head and "0.0.0.0" not in head
    assert not any("ray stop" in c for c in cfg["head_start_ray_commands"] + cfg["worker_start_ray_commands"])
    assert "RAY_AUTH_MODE=token" in " ".join(cfg["docker"]["run_options"])


def test_pinned_ray_matches_manifests_and_package_requirement():
    text = (DEPLOY / "Dockerfile").read_text()
    ray_pin = re.search(r'"ray\[default\]==([^"]+)"', text).group(1)
    for name in ("raycluster.yaml", "rayjob.yaml", "rayjob-hulltest.yaml"):
        main = next(d for d in load_all(name) if d["kind"] in ("RayCluster", "RayJob"))
        cluster = main["spec"] if main["kind"] == "RayCluster" else main["spec"]["rayClusterSpec"]
        assert cluster["rayVersion"] == ray_pin


def test_submit_entrypoint_runs_mc_hull_run():
    from mc_hull.spec import Spec
    from mc_hull.distributed.submit import entrypoint, submission_id

    spec = Spec(distribution="ball", dims=(3,), sizes=(10, 100), trials=50, tol=3e-10)
    cmd = entrypoint(spec, "s3://b/p?endpoint_override=127.0.0.1:9000&scheme=http")
    assert cmd.startswith("mc-hull run ") and "'s3://b/p?endpoint_override=127.0.0.1:9000&scheme=http'" in cmd
    assert submission_id(spec, "/x") == submission_id(spec, "/x") != submission_id(spec, "/y")
    assert submission_id(spec, "/x") != submission_id(spec.with_overrides(seed=1), "/x")


def test_defaults_stay_on_loopback():
    from mc_hull.distributed import submit

    assert submit.DEFAULT_ADDRESS.startswith("http://127.0.0.1:")
    src = (Path(mc_hull.__file__).parent / "distributed" / "pool.py").read_text()
    assert 'address="local"' in src and "include_dashboard=False" in src
