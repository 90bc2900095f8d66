"""What pip installs does not depend on the order it installs things in.

When two distributions ship the same file, the one installed last wins, and which one
that is varies with pip's resolver. That is how xds-protos' stale copy of the
OpenTelemetry protos broke the OTLP exporter on some fresh installs (and how it
shadowed googleapis-common-protos' google/api stubs): no file may have two owners.
"""

from __future__ import annotations

from collections import defaultdict
from importlib.metadata import distributions


def files_with_several_owners() -> dict[str, set[str]]:
    owners: dict[str, set[str]] = defaultdict(set)
    for dist in distributions():
        name = dist.metadata["Name"]  # parsed from METADATA on every access: once per dist
        for file in dist.files or []:
            path = str(file)
            if "__pycache__" in path or ".dist-info/" in path or path.startswith(".."):
                continue
            owners[path].add(name)
    return {path: names for path, names in owners.items() if len(names) > 1}


def test_no_installed_file_belongs_to_two_distributions() -> None:
    shared = files_with_several_owners()
    assert not shared, (
        "these files are installed by several distributions, so which copy is kept depends "
        f"on install order (recreate .venv after removing a dependency): {sorted(shared.items())[:5]}"
    )


def test_the_otlp_exporter_imports_with_the_protos_of_its_own_release() -> None:
    from importlib.metadata import version

    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.proto.common.v1 import common_pb2

    assert OTLPSpanExporter is not None
    (owner,) = {
        dist.metadata["Name"]
        for dist in distributions()
        if any(str(f) == "opentelemetry/proto/common/v1/common_pb2.py" for f in dist.files or [])
    }
    assert owner == "opentelemetry-proto"
    assert version("opentelemetry-proto") == version("opentelemetry-exporter-otlp-proto-grpc")
    assert common_pb2.DESCRIPTOR.name == "opentelemetry/proto/common/v1/common.proto"
