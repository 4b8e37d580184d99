"""The launch recipes of deploy/, run for real against the test PostgreSQL: the SLURM array
script under bash with the variables an array task has, and the Kubernetes manifests'
containers as processes, with their environment and secrets as the kubelet gives them and
the proxy's Service name resolved to this machine. The schedulers themselves are not here."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest
import yaml

from conftest import PATIENCE, ROOT, TINY, trials, wait_for

SBATCH = ROOT / "deploy" / "slurm" / "lrsearch-array.sbatch"
KUBERNETES = ROOT / "deploy" / "kubernetes"
#: Where `lrsearch` and the image's `python` are, as the recipes call them.
VENV_BIN = Path(sys.executable).parent
N_TRIALS = 3


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def state_counts(storage: str) -> dict[str, int]:
    states = [t.state.name for t in trials(storage, "tiny")]
    return {state: states.count(state) for state in set(states)}


def base_env(**extra: str) -> dict[str, str]:
    """This environment without a storage URL of its own, `lrsearch` on PATH, no GPU."""
    env = {name: value for name, value in os.environ.items() if name != "LRSEARCH_STORAGE"}
    return {**env, "PATH": f"{VENV_BIN}{os.pathsep}{env['PATH']}", "PYTHONUNBUFFERED": "1",
            "CUDA_VISIBLE_DEVICES": "", **extra}


def output(process: subprocess.Popen, log: Path) -> str:
    return f"exit {process.returncode}:\n{log.read_text()}"


#: The process groups a test started (each in its own session), ended after it if still there.
LAUNCHED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _end_launched():
    yield
    while LAUNCHED:
        process = LAUNCHED.pop()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def launch(line: list[str], log: Path, **popen) -> subprocess.Popen:
    """`line` in its own session, its output in `log`."""
    with open(log, "w") as out:
        process = subprocess.Popen(line, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **popen)
    LAUNCHED.append(process)
    return process


# --------------------------------------------------------------------------- SLURM


def storage_file(tmp_path: Path, url: str, mode: int = 0o600) -> Path:
    """The file the sbatch script reads LRSEARCH_STORAGE from, as its comments say to write it."""
    path = tmp_path / "storage.env"
    path.write_text(f"LRSEARCH_STORAGE='{url}'\n")
    path.chmod(mode)
    return path


def array_task(tmp_path: Path, task: int, count: int, env_file: Path, **settings: str) -> tuple[subprocess.Popen, Path]:
    """Array task `task` of `count` of the sbatch script, as `sbatch` starts it on a node
    (its #SBATCH lines are comments to bash), with one CPU worker."""
    job = 4242
    env = base_env(SLURM_JOB_ID=str(job + task), SLURM_ARRAY_JOB_ID=str(job), SLURM_ARRAY_TASK_ID=str(task),
                   SLURM_ARRAY_TASK_COUNT=str(count), SLURM_ARRAY_TASK_MIN="0", SLURM_ARRAY_TASK_MAX=str(count - 1),
                   SLURM_SUBMIT_DIR=str(tmp_path), SLURM_JOB_NODELIST=socket.gethostname(), SLURM_CPUS_PER_TASK="1",
                   STUDY_FILE=str(TINY), N_TRIALS=str(N_TRIALS), LRSEARCH_ENV_FILE=str(env_file), **settings)
    log = tmp_path / f"lrsearch-{job}_{task}.out"
    return launch(["bash", str(SBATCH), "--workers", "1"], log, cwd=tmp_path, env=env), log


def test_the_sbatch_script_asks_for_gpus_and_holds_no_storage_url():
    text = SBATCH.read_text()
    assert re.search(r"^#SBATCH --gres=gpu:\d+$", text, re.M) and re.search(r"^#SBATCH --array=\d+-\d+", text, re.M)
    assert "lrsearch worker" in text and "--gpus all --per-gpu 1" in text
    assert set(re.findall(r"postgresql://([^@\s]*)@", text)) == {"USER:PASSWORD"}  # placeholders only


def test_the_sbatch_script_refuses_a_storage_file_that_others_may_read(tmp_path):
    process, log = array_task(tmp_path, 0, 1, storage_file(tmp_path, "postgresql://u:secret@db/x", mode=0o644))
    assert process.wait(timeout=PATIENCE) == 2, output(process, log)
    assert "others may read it (mode 644): chmod 600 it" in log.read_text()
    assert "secret" not in log.read_text()


@pytest.mark.postgres
@pytest.mark.slow
def test_two_array_tasks_fill_one_study_on_postgresql(tmp_path, fresh_postgres):
    env_file = storage_file(tmp_path, fresh_postgres)
    tasks = [array_task(tmp_path, task, 2, env_file) for task in (0, 1)]
    for process, log in tasks:
        assert process.wait(timeout=PATIENCE) == 0, output(process, log)
        assert "Traceback" not in log.read_text()
        assert urllib.parse.urlsplit(fresh_postgres).password not in log.read_text()
    assert state_counts(fresh_postgres) == {"COMPLETE": N_TRIALS}


@pytest.mark.postgres
@pytest.mark.slow
def test_two_array_tasks_fill_one_study_through_the_proxy_of_task_0(tmp_path, fresh_postgres):
    port = free_port()
    env_file = storage_file(tmp_path, fresh_postgres)
    settings = {"LRSEARCH_PROXY": "1", "LRSEARCH_PROXY_PORT": str(port)}
    tasks = [array_task(tmp_path, task, 2, env_file, **settings) for task in (1, 0)]  # task 1 waits for task 0
    for process, log in tasks:
        assert process.wait(timeout=PATIENCE) == 0, output(process, log)
        assert "Traceback" not in log.read_text()
    assert f"worker {TINY}" in tasks[0][1].read_text()  # task 1 ran workers, on the proxy
    assert state_counts(fresh_postgres) == {"COMPLETE": N_TRIALS}
    rendezvous = tmp_path / "lrsearch-proxy-4242"
    assert sorted(p.name for p in rendezvous.iterdir()) == ["done.1", "finished", "started.1"]
    assert (rendezvous / "finished").read_text() == "0\n"
    assert not listening(port), "task 0 left its proxy running"


def test_a_proxy_port_in_use_stops_task_0_and_the_tasks_waiting_for_it(tmp_path):
    """No database is opened: task 0 refuses before it starts the proxy, and the task that
    waits for it learns so from the rendezvous folder instead of waiting out its patience."""
    env_file = storage_file(tmp_path, "postgresql://u:secret@db/x")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = {"LRSEARCH_PROXY": "1", "LRSEARCH_PROXY_PORT": str(taken.getsockname()[1])}
        waiting, waiting_log = array_task(tmp_path, 1, 2, env_file, **settings)
        first, first_log = array_task(tmp_path, 0, 2, env_file, **settings)
        assert first.wait(timeout=PATIENCE) == 2, output(first, first_log)
        assert waiting.wait(timeout=PATIENCE) == 75, output(waiting, waiting_log)
    assert "is in use" in first_log.read_text() and "task 0 ended (exit 2)" in waiting_log.read_text()


# --------------------------------------------------------------------------- Kubernetes


def manifests() -> dict[str, dict]:
    """kind/name -> object, from every manifest of deploy/kubernetes."""
    found = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            found[f"{document['kind']}/{document['metadata']['name']}"] = document
    return found


def pod_spec(objects: dict[str, dict], kind: str) -> dict:
    (spec,) = [o["spec"]["template"]["spec"] for key, o in objects.items() if key.startswith(f"{kind}/")]
    return spec


def container_command(container: dict, secrets: dict[str, dict[str, str]], overrides: dict[str, str],
                      services: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The command line and environment the kubelet gives `container`: its env with
    secretKeyRef values from `secrets` (name -> key -> value), `overrides` on top, $(VAR)
    references expanded, and each "service:port" in `services` replaced by where it runs here."""
    env = {}
    for variable in container.get("env", []):
        if "valueFrom" in variable:
            reference = variable["valueFrom"]["secretKeyRef"]
            env[variable["name"]] = secrets[reference["name"]][reference["key"]]
        else:
            env[variable["name"]] = variable["value"]
    env.update(overrides)

    def expand(text: str) -> str:
        text = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), text)
        for address, local in services.items():
            text = text.replace(address, local)
        return text

    line = [expand(part) for part in container.get("command", []) + container.get("args", [])]
    return line, env


def start(line: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """`line` as a process, with the image's programs (`lrsearch`, `python`) from this venv."""
    program = {"lrsearch": str(VENV_BIN / "lrsearch"), "python": sys.executable}.get(line[0], line[0])
    return launch([program, *line[1:]], log, cwd=ROOT, env=base_env(**env))


def test_the_manifests_wire_secret_proxy_service_and_an_indexed_gpu_job():
    objects = manifests()
    assert set(objects) == {"Secret/lrsearch-database", "Deployment/lrsearch-proxy", "Service/lrsearch-proxy",
                            "Job/lrsearch-workers"}
    job = objects["Job/lrsearch-workers"]["spec"]
    assert job["completionMode"] == "Indexed" and job["parallelism"] == job["completions"]
    (worker,) = job["template"]["spec"]["containers"]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] >= 1
    assert worker["args"][:1] == ["worker"] and "--gpus all --per-gpu 1" in " ".join(worker["args"])
    service = objects["Service/lrsearch-proxy"]["spec"]["ports"][0]
    assert f"grpc://lrsearch-proxy:{service['port']}" in worker["args"]
    (proxy,) = objects["Deployment/lrsearch-proxy"]["spec"]["template"]["spec"]["containers"]
    (port,) = proxy["ports"]
    assert service["targetPort"] == port["name"] and proxy["args"][-2:] == ["--port", str(port["containerPort"])]
    assert proxy["args"][:3] == ["storage-proxy", "--storage", "$(LRSEARCH_DATABASE_URL)"]
    assert objects["Deployment/lrsearch-proxy"]["spec"]["replicas"] == 1


@pytest.mark.postgres
@pytest.mark.slow
def test_the_kubernetes_proxy_and_a_worker_pod_fill_one_study_on_postgresql(tmp_path, fresh_postgres):
    objects = manifests()
    secret = objects["Secret/lrsearch-database"]
    secrets = {secret["metadata"]["name"]: {key: fresh_postgres for key in secret["stringData"]}}
    port = free_port()
    service = objects["Service/lrsearch-proxy"]["spec"]["ports"][0]["port"]
    services = {f"lrsearch-proxy:{service}": f"127.0.0.1:{port}"}
    (proxy_container,) = pod_spec(objects, "Deployment")["containers"]
    proxy_line, proxy_env = container_command(proxy_container, secrets, {}, services)
    proxy_line[proxy_line.index("--port") + 1] = str(port)  # the Service's target, here on a free port
    assert fresh_postgres in proxy_line

    worker_pod = pod_spec(objects, "Job")
    (init,) = worker_pod["initContainers"]
    (worker,) = worker_pod["containers"]
    overrides = {"STUDY_FILE": str(TINY), "N_TRIALS": str(N_TRIALS), "JOB_COMPLETION_INDEX": "0"}
    init_line, init_env = container_command(init, secrets, overrides, services)
    worker_line, worker_env = container_command(worker, secrets, overrides, services)
    assert fresh_postgres not in " ".join(worker_line) + " ".join(worker_env.values())

    waiting = start(init_line, init_env, tmp_path / "init.log")  # the pod starts before the proxy is up
    proxy = start(proxy_line, proxy_env, tmp_path / "proxy.log")
    try:
        assert waiting.wait(timeout=PATIENCE) == 0, output(waiting, tmp_path / "init.log")
        pod = start([*worker_line, "--workers", "1"], worker_env, tmp_path / "worker.log")
        assert pod.wait(timeout=PATIENCE) == 0, output(pod, tmp_path / "worker.log")
        assert "Traceback" not in (tmp_path / "worker.log").read_text()
        assert state_counts(fresh_postgres) == {"COMPLETE": N_TRIALS}
        assert proxy.poll() is None, output(proxy, tmp_path / "proxy.log")
    finally:
        os.killpg(proxy.pid, signal.SIGTERM)  # as the kubelet stops a pod
        proxy.wait(timeout=PATIENCE)
    assert proxy.returncode == 0, output(proxy, tmp_path / "proxy.log")
    assert "Traceback" not in (tmp_path / "proxy.log").read_text()
    assert urllib.parse.urlsplit(fresh_postgres).password not in (tmp_path / "proxy.log").read_text()
    wait_for(lambda: not listening(port), "the proxy to close its port")
