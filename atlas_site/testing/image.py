"""What the Docker image holds, read from the Dockerfile and .dockerignore (no Docker engine here).

`build_context()` lists the files `docker build` would send: the folder's files less what
.dockerignore leaves out, walked by docker-py's own implementation of Docker's rules
(patterns relative to the context root, `**` at any depth, `!` bringing a path back, the
last matching line winning, a matched folder taking everything under it).
`image_files()` follows the Dockerfile's COPY and ADD instructions from that context: the
path of each file in the image, mapped to the file of the context it comes from.
`source_tree()` is what the image must not lose from: the files git tracks or would track.
"""

import io
import json
import posixpath
import re
import shlex
import subprocess
from fnmatch import fnmatchcase
from functools import cache
from pathlib import Path

from django.conf import settings
from docker.utils.build import PatternMatcher
from dockerfile_parse import DockerfileParser

ROOT = Path(settings.BASE_DIR)
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
GLOB = re.compile(r"[*?\[]")


@cache
def source_tree() -> frozenset[str]:
    """Every file git tracks or would track, as root-relative posix paths: the files a build
    must not lose (bytecode, caches and local scratch are not among them)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    # A file deleted in the working tree but still in the index is not there to send.
    return frozenset(path for path in listed.split("\0") if path and (ROOT / path).is_file())


def dockerignore_patterns(text: str | None = None) -> list[str]:
    """The patterns of .dockerignore, read as docker-py reads them (no blanks, no comments)."""
    if text is None:
        text = DOCKERIGNORE.read_text() if DOCKERIGNORE.exists() else ""
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def build_context(root: Path = ROOT, dockerignore: str | None = None) -> frozenset[str]:
    """The files under `root` that `docker build` sends: everything .dockerignore (by default
    root's own) lets through, walked as docker-py walks it, as root-relative posix paths."""
    if dockerignore is None:
        ignore_file = root / ".dockerignore"
        dockerignore = ignore_file.read_text() if ignore_file.exists() else ""
    matcher = PatternMatcher(dockerignore_patterns(dockerignore))
    return frozenset(
        Path(path).as_posix() for path in matcher.walk(str(root)) if (root / path).is_file()
    )


def _instructions(dockerfile: str) -> list[tuple[str, str]]:
    parser = DockerfileParser(fileobj=io.BytesIO(dockerfile.encode()))
    return [(item["instruction"], item["value"]) for item in parser.structure]


def _arguments(value: str) -> list[str]:
    value = value.strip()
    if value.startswith("["):  # exec form: COPY ["a b", "dest/"]
        return json.loads(value)
    return shlex.split(value)


def _matches(source: str, path: str) -> str | None:
    """The part of the context `source` names that `path` lies in (itself or a folder), if any."""
    if source == "":
        return ""
    depth = source.count("/") + 1
    prefix = "/".join(path.split("/")[:depth])
    if GLOB.search(source):
        return prefix if fnmatchcase(prefix, source) else None
    return source if prefix == source else None


def image_files(
    dockerfile: str | None = None, context: frozenset[str] | None = None
) -> dict[str, str]:
    """Absolute path in the image -> root-relative path in the build context, for every file
    that the final stage's COPY and ADD instructions take from the context (by default this
    repository's Dockerfile and build context)."""
    if dockerfile is None:
        dockerfile = DOCKERFILE.read_text()
    if context is None:
        context = build_context()
    files: dict[str, str] = {}
    workdir = "/"
    for instruction, value in _instructions(dockerfile):
        if instruction == "FROM":  # a new stage: only the last one is the image
            files, workdir = {}, "/"
        elif instruction == "WORKDIR":
            workdir = posixpath.join(workdir, value.strip())
        elif instruction in ("COPY", "ADD"):
            words = _arguments(value)
            if any(word.startswith("--from") for word in words):
                continue  # from another stage or image, not from the context
            *sources, destination = [word for word in words if not word.startswith("--")]
            destination = posixpath.join(workdir, destination)
            into_folder = destination.endswith("/") or len(sources) > 1
            for source in sources:
                if "://" in source:
                    continue  # ADD of a URL
                source = posixpath.normpath(source).lstrip("/")
                source = "" if source == "." else source
                for path in sorted(context):
                    matched = _matches(source, path)
                    if matched is None:
                        continue
                    if matched != path:  # a folder: its contents go into the destination
                        target = posixpath.join(destination, path[len(matched) :].lstrip("/"))
                    elif into_folder or GLOB.search(source):
                        target = posixpath.join(destination, posixpath.basename(path))
                    else:
                        target = destination
                    files[posixpath.normpath(target)] = path
    return files


def workdir(dockerfile: str | None = None) -> str:
    """The final stage's working directory (where `COPY . .` lands)."""
    if dockerfile is None:
        dockerfile = DOCKERFILE.read_text()
    current = "/"
    for instruction, value in _instructions(dockerfile):
        if instruction == "FROM":
            current = "/"
        elif instruction == "WORKDIR":
            current = posixpath.join(current, value.strip())
    return current
