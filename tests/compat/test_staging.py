"""File staging with Parsl's providers: HTTP into the task, zip archives, storage_access."""

from __future__ import annotations

import http.server
import os
import threading
import zipfile

import pytest

from taskscope import AUTO_LOGNAME, File, bash_app, python_app
from taskscope.data_provider.file_noop import NoOpFileStaging
from taskscope.data_provider.staging import Staging
from taskscope.executors import HighThroughputExecutor, ThreadPoolExecutor


@python_app
def read_text(inputs=()):
    with open(inputs[0]) as f:
        return inputs[0].filepath, f.read()


@bash_app
def write(text, outputs=()):
    return f"mkdir -p $(dirname {outputs[0]}) && echo {text} > {outputs[0]}"


@pytest.fixture
def http_root(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    (root / "data.txt").write_text("served over http\n")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("kind", ["threads", "htex"])
def test_an_http_input_is_downloaded_inside_the_task(load_config, http_root, tmp_path, kind):
    work = tmp_path / "work"
    if kind == "threads":
        executor = ThreadPoolExecutor(working_dir=str(work))
    else:
        executor = HighThroughputExecutor(
            label="htex", max_workers_per_node=1, working_dir=str(work)
        )
    load_config(executors=[executor])
    path, text = read_text(inputs=[File(f"{http_root}/data.txt")]).result(timeout=60)
    assert text == "served over http\n"
    assert path == str(work / "data.txt")


def test_a_failed_download_fails_the_task(load_config, http_root):
    load_config()
    exc = read_text(inputs=[File(f"{http_root}/absent.txt")]).exception(timeout=60)
    assert "404" in str(exc)


def test_zip_outputs_and_inputs_go_through_the_archive(load_config, tmp_path):
    load_config()
    archive = tmp_path / "out" / "results.zip"
    futs = [write(f"line{i}", outputs=[File(f"zip:{archive}/inside/{i}.txt")]) for i in range(3)]
    for fut in futs:
        assert fut.outputs[0].result(timeout=60).url.startswith("zip:")
    with zipfile.ZipFile(archive) as z:
        assert sorted(z.namelist()) == ["inside/0.txt", "inside/1.txt", "inside/2.txt"]
        assert z.read("inside/2.txt") == b"line2\n"
    _, text = read_text(inputs=[File(f"zip:{archive}/inside/1.txt")]).result(timeout=60)
    assert text == "line1\n"
    # a zip output can feed the next app directly, through its DataFuture
    produced = write("chained", outputs=[File(f"zip:{archive}/inside/chained.txt")])
    _, text = read_text(inputs=[produced.outputs[0]]).result(timeout=60)
    assert text == "chained\n"


class Upper(Staging):
    """Stages ``upper:`` inputs by writing their path in capitals to a local file."""

    def __init__(self, folder):
        self.folder = folder

    def can_stage_in(self, file):
        return file.scheme == "upper"

    def stage_in(self, dm, executor, file, parent_fut):
        file.local_path = os.path.join(self.folder, file.filename)
        with open(file.local_path, "w") as f:
            f.write(file.path.upper())


def test_a_custom_provider_in_storage_access_stages_its_scheme(load_config, tmp_path):
    load_config(
        executors=[ThreadPoolExecutor(storage_access=[Upper(str(tmp_path)), NoOpFileStaging()])]
    )
    _, text = read_text(inputs=[File("upper:some/name.txt")]).result(timeout=30)
    assert text == "SOME/NAME.TXT"
    with pytest.raises(ValueError, match="cannot stage file"):
        read_text(inputs=[File("zip:/tmp/x.zip/a")])  # not in this executor's providers


def test_an_unknown_scheme_is_refused_at_the_call(load_config):
    load_config()
    with pytest.raises(ValueError, match="cannot stage file"):
        read_text(inputs=[File("gopher://example.org/x")])


def test_staging_leaves_the_callers_file_unchanged(load_config, tmp_path):
    load_config(
        executors=[ThreadPoolExecutor(storage_access=[Upper(str(tmp_path)), NoOpFileStaging()])]
    )
    mine = File("upper:kept/clean.txt")

    @python_app
    def seen_local_path(f):
        return f.local_path

    assert seen_local_path(mine).result(timeout=30) == str(tmp_path / "clean.txt")
    assert mine.local_path is None


def test_std_autopath_may_name_a_zip_member(load_config, tmp_path):
    archive = tmp_path / "logs.zip"

    def autopath(record, stream):
        return File(f"zip:{archive}/{record.func_name}.{record.id}.{stream}")

    load_config(std_autopath=autopath)
    fut = write_std()
    from taskscope.dataflow.futures import DataFuture

    assert isinstance(fut.stdout, DataFuture)
    fut.stdout.result(timeout=60)
    fut.stderr.result(timeout=60)
    with zipfile.ZipFile(archive) as z:
        assert z.read(f"write_std.{fut.tid}.stdout") == b"hello\n"
        assert z.read(f"write_std.{fut.tid}.stderr") == b"goodbye\n"


@bash_app
def write_std(stdout=AUTO_LOGNAME, stderr=AUTO_LOGNAME):
    return "echo hello; echo goodbye >&2"
