"""Spark session setup: masters, ``--spark-conf`` settings, quiet logs, the workers' Python.

Nothing here imports pyspark at module level: the checks (``spark_problem``,
``parse_master``, ``parse_conf``) run without it, so the command line can refuse a bad
value with one line before anything starts.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

DEFAULT_MASTER: Final = "local[*]"
_MASTER_PATTERNS: Final = (
    r"local",
    r"local\[(\*|[1-9][0-9]*)\]",
    r"local\[(\*|[1-9][0-9]*),\s*[1-9][0-9]*\]",
    r"local-cluster\[[1-9][0-9]*,\s*[1-9][0-9]*,\s*[1-9][0-9]*\]",
    r"spark://[^\s/]+(:[0-9]+)?(,[^\s/]+(:[0-9]+)?)*",
    r"yarn",
    r"k8s://\S+",
    r"sc://\S+",
)
# Settings the engine sets unless ``--spark-conf`` says otherwise.
DEFAULT_CONF: Final = {
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}
LOCAL_CONF: Final = {
    "spark.ui.enabled": "false",
    "spark.driver.memory": "4g",
}
# Spark's own logs: warnings and errors only (Spark prints a notice when the root level is not
# WARN), Hadoop's missing-native-library notice left out.
_QUIET_LOG4J: Final = """\
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n
logger.hadoop.name = org.apache.hadoop.util.NativeCodeLoader
logger.hadoop.level = error
"""


class SparkSetupError(Exception):
    """Spark cannot be used as asked; the message is one line for the user."""


def is_local(master: str) -> bool:
    return master == "local" or master.startswith(("local[", "local-cluster["))


def is_connect(master: str) -> bool:
    return master.startswith("sc://")


def parse_master(master: str) -> str:
    """``master`` if Spark knows its form (local[N], spark://, yarn, k8s://, sc://...)."""
    value = master.strip()
    if not any(re.fullmatch(p, value) for p in _MASTER_PATTERNS):
        msg = (
            f"--master {master!r} is not a Spark master (local[*], local[N], spark://HOST:PORT, "
            "yarn, k8s://URL, or sc://HOST:PORT for Spark Connect)"
        )
        raise SparkSetupError(msg)
    return value


def parse_conf(items: Iterable[str]) -> dict[str, str]:
    """``KEY=VALUE`` settings (``--spark-conf``) as a dict, in order given."""
    conf: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not key.strip().startswith("spark."):
            msg = f"--spark-conf {item!r} is not KEY=VALUE with a spark.* key"
            raise SparkSetupError(msg)
        conf[key.strip()] = value
    return conf


def spark_problem(master: str) -> str | None:
    """Why the Spark engine cannot run here with ``master`` (None when it can)."""
    if importlib.util.find_spec("pyspark") is None:
        return "--engine spark needs pyspark: pip install 'posaudit[spark]'"
    if is_connect(master):
        if importlib.util.find_spec("grpc") is None:
            return "Spark Connect (sc://) needs pyspark's extra: pip install 'pyspark[connect]'"
        return None
    java_home = os.environ.get("JAVA_HOME")
    if shutil.which("java") is None and not (
        java_home and (Path(java_home) / "bin" / "java").exists()
    ):
        return "--engine spark needs Java 17 or later (no java on PATH and no $JAVA_HOME)"
    return None


def _log_config() -> Path:
    """A log4j2 file that keeps Spark's own logs to errors (written once per process)."""
    path = Path(tempfile.gettempdir()) / f"posaudit-spark-log4j2-{os.getuid()}.properties"
    if not path.exists() or path.read_text(encoding="utf-8") != _QUIET_LOG4J:
        path.write_text(_QUIET_LOG4J, encoding="utf-8")
    return path


def start_session(master: str, conf: Mapping[str, str] | None = None) -> SparkSession:
    """A Spark session on ``master`` with posaudit's defaults under ``conf``.

    Local masters run the workers on this interpreter (``PYSPARK_PYTHON`` unless already
    set), so the installed posaudit is the one the executors import.
    """
    from pyspark.sql import SparkSession

    settings = dict(DEFAULT_CONF)
    if is_connect(master):
        builder = SparkSession.builder.remote(master)
    else:
        builder = SparkSession.builder.master(master)
        if is_local(master):
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
            # a local session listens on loopback only
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            settings |= LOCAL_CONF
            settings["spark.driver.extraJavaOptions"] = (
                f"-Dlog4j2.configurationFile={_log_config()}"
            )
    settings |= dict(conf or {})
    builder = builder.appName("posaudit")
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        return builder.getOrCreate()
    except Exception as exc:
        text = str(exc).strip().splitlines()
        msg = f"cannot start Spark on {master}: {text[0] if text else type(exc).__name__}"
        raise SparkSetupError(msg) from exc
