"""One storage root for every artifact: local folder by default, S3 in production.

Layout: ``{root}/{pipeline}/{kind}/{partition}/{name}``. Every segment is validated so that a partition
key or a user-supplied name can never climb out of the root. Writes are atomic: content goes to a
temporary name beside the target and is moved into place only when complete, so a reader sees either
the old object or the new one, never a half-written file, and a rerun of the same partition replaces
the same place instead of adding a duplicate.

The filesystem is a ``pyarrow.fs.FileSystem``: local, or S3 built from credentials the hook supplies.
pyarrow is imported lazily so that hooks and operators can import this module while DAG files parse.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.errors import ArtifactError, IntegrityError, SourceNotFoundError, SpecError

if TYPE_CHECKING:
    import pyarrow.fs as pafs

_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._=+:@,-]*$")
_CHUNK = 1 << 20


def validate_segment(value: str, what: str = "path segment") -> str:
    """Return ``value`` if it is a safe single path segment, else raise ``SpecError``.

    Safe means: not empty, no slash or backslash, not ``.``/``..``, no leading dot, and only letters,
    digits and ``._=+:@,-``. Partition keys such as ``2013-04-01T00:00:00+00:00`` pass.
    """
    text = str(value)
    if not _SEGMENT.fullmatch(text) or text in {".", ".."}:
        raise SpecError(
            f"The {what} must be a single path segment of letters, digits and '._=+:@,-' "
            f"(no '/', no '..', no leading dot). Got {text!r} instead."
        )
    return text


def validate_relative_path(value: str, what: str = "relative path") -> str:
    """Validate a slash-separated path relative to the root; every segment must be safe."""
    parts = [p for p in str(value).split("/") if p]
    if not parts:
        raise SpecError(f"The {what} must name at least one segment. Got {value!r} instead.")
    return "/".join(validate_segment(p, what) for p in parts)


def validate_key(value: str, what: str = "storage key") -> str:
    """Validate a key as written, relative to the root: no leading ``/``, no backslash, NUL or empty
    segment, and every segment safe (:func:`validate_segment`); a path from outside (a request) is checked so."""
    text = str(value)
    if not text or text.startswith(("/", "\\")) or "\\" in text or "\x00" in text or "//" in text:
        raise SpecError(
            f"A {what} must be relative to the storage root, with '/' between segments. Got {text!r} instead."
        )
    return validate_relative_path(text, what)


def _is_temporary(path: str) -> bool:
    return "/.tmp/" in path or path.rpartition("/")[2].startswith(".tmp-")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _split_uri(uri: str) -> tuple[str, str]:
    """Return (scheme, path-without-scheme). Local paths have scheme 'file'."""
    if uri.startswith("s3://"):
        return "s3", uri[len("s3://") :].rstrip("/")
    if uri.startswith("file://"):
        return "file", os.path.abspath(uri[len("file://") :])
    if "://" in uri:
        scheme = uri.split("://", 1)[0]
        raise SpecError(f"Storage URIs must be local paths, file:// or s3://. Got scheme {scheme!r} in {uri!r}.")
    return "file", os.path.abspath(uri)


def s3_filesystem(
    *,
    access_key: str | None = None,
    secret_key: str | None = None,
    session_token: str | None = None,
    region: str | None = None,
    endpoint_url: str | None = None,
) -> pafs.FileSystem:
    """Build a pyarrow S3 filesystem from explicit credentials (never from process-wide env writes)."""
    import pyarrow.fs as pafs

    kwargs: dict[str, Any] = {"region": region or "us-east-1"}
    if access_key and secret_key:
        kwargs.update(access_key=access_key, secret_key=secret_key, session_token=session_token)
    if endpoint_url:
        scheme, _, host = endpoint_url.partition("://")
        kwargs.update(endpoint_override=host or scheme, scheme=scheme if host else "https")
    return pafs.S3FileSystem(**kwargs)


@dataclass(frozen=True)
class StorageRoot:
    """A storage root URI plus the filesystem that reaches it.

    :param uri: local path, ``file://`` URI or ``s3://bucket/prefix``.
    :param filesystem: the pyarrow filesystem for that URI; local when omitted. S3 roots need one
        built by :func:`s3_filesystem` (the storage hook does this from an Airflow connection).
    """

    uri: str
    filesystem: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        scheme, path = _split_uri(self.uri)
        if scheme == "s3" and not path:
            raise SpecError(f"An S3 storage root must name a bucket: s3://bucket[/prefix]. Got {self.uri!r}.")
        if self.filesystem is None:
            if scheme == "s3":
                object.__setattr__(self, "filesystem", s3_filesystem())
            else:
                import pyarrow.fs as pafs

                object.__setattr__(self, "filesystem", pafs.LocalFileSystem())
        canonical = f"s3://{path}" if scheme == "s3" else path
        object.__setattr__(self, "uri", canonical.rstrip("/") or "/")

    # -- naming -------------------------------------------------------------------------------
    @property
    def is_s3(self) -> bool:
        return self.uri.startswith("s3://")

    def join(self, *relative: str) -> str:
        """URI of ``relative`` under the root; each part is validated against traversal."""
        parts = [validate_relative_path(p) for p in relative]
        return "/".join([self.uri, *parts])

    def layout(self, pipeline: str, kind: str, partition: str, *names: str) -> str:
        """``{root}/{pipeline}/{kind}/{partition}/{names...}``, every segment validated."""
        return "/".join(
            [
                self.uri,
                validate_segment(pipeline, "pipeline name"),
                validate_segment(kind, "artifact kind"),
                validate_segment(partition, "partition key"),
                *(validate_relative_path(n, "artifact name") for n in names),
            ]
        )

    def contains(self, uri: str) -> bool:
        """True when ``uri`` lies inside this root (after normalisation)."""
        scheme, path = _split_uri(uri)
        root_scheme, root_path = _split_uri(self.uri)
        if scheme != root_scheme:
            return False
        if scheme == "file":
            path = os.path.normpath(path)
        return path == root_path or path.startswith(root_path.rstrip("/") + "/")

    def fs_path(self, uri: str) -> str:
        """The filesystem path for a URI inside this root; refuses URIs outside it."""
        if not self.contains(uri):
            raise SpecError(f"The URI {uri!r} lies outside the storage root {self.uri!r}.")
        return _split_uri(uri)[1]

    # -- reading ------------------------------------------------------------------------------
    def exists(self, uri: str) -> bool:
        import pyarrow.fs as pafs

        info = self.filesystem.get_file_info(self.fs_path(uri))
        return bool(info.type != pafs.FileType.NotFound)

    def read_bytes(self, uri: str) -> bytes:
        try:
            with self.filesystem.open_input_stream(self.fs_path(uri)) as stream:
                return bytes(stream.read())
        except FileNotFoundError as exc:
            raise SourceNotFoundError(f"No artifact at {uri!r}.") from exc

    def sha256(self, uri: str) -> str:
        """Streaming sha256 of an artifact's content."""
        digest = hashlib.sha256()
        try:
            with self.filesystem.open_input_stream(self.fs_path(uri)) as stream:
                while chunk := stream.read(_CHUNK):
                    digest.update(chunk)
        except FileNotFoundError as exc:
            raise SourceNotFoundError(f"No artifact at {uri!r}.") from exc
        return digest.hexdigest()

    def verify_sha256(self, uri: str, expected: str) -> None:
        actual = self.sha256(uri)
        if actual != expected:
            raise IntegrityError(
                f"The artifact {uri!r} has sha256 {actual}, but {expected} was recorded for it: "
                "it was changed after it was written. Refusing to use it."
            )

    # -- writing ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def atomic_output(self, uri: str) -> Iterator[Any]:
        """Yield a writable binary stream; on success the content appears at ``uri`` at once.

        The stream writes to ``.tmp-<name>-<uuid>`` beside the target. Only after the block ends
        without error is it moved onto ``uri`` (a rename locally, a server-side copy on S3: both
        make the new object visible whole). On error the temporary object is removed and ``uri``
        keeps whatever it held before.
        """
        final = self.fs_path(uri)
        parent, _, name = final.rpartition("/")
        if self.is_s3:
            # pyarrow leaves an empty "folder" marker where it deletes an object; keep such markers in
            # one hidden place under the root instead of beside every artifact.
            temporary = f"{_split_uri(self.uri)[1]}/.tmp/{uuid.uuid4().hex}-{name}"
        else:
            temporary = f"{parent}/.tmp-{name}-{uuid.uuid4().hex}"  # same folder: rename stays atomic
        fs = self.filesystem
        try:
            if not self.is_s3:  # S3 has no folders; creating one would leave marker objects behind
                fs.create_dir(parent, recursive=True)
        except OSError as exc:
            raise ArtifactError(f"Could not create the folder for {uri!r}: {exc}") from exc
        committed = False
        try:
            with fs.open_output_stream(temporary) as stream:
                yield stream
            fs.move(temporary, final)
            committed = True
        except OSError as exc:
            raise ArtifactError(f"Could not write {uri!r}: {exc}") from exc
        finally:
            if not committed:
                with contextlib.suppress(OSError):
                    fs.delete_file(temporary)

    def write_bytes(self, uri: str, data: bytes) -> str:
        """Atomically write ``data`` to ``uri``; return its sha256."""
        with self.atomic_output(uri) as stream:
            stream.write(data)
        return sha256_bytes(data)

    def remove_stale_temporaries(self, uri: str) -> None:
        """Delete temporaries a killed earlier attempt left beside ``uri``.

        Call it after ``uri`` was written: its own temporary is gone by then. Local roots only: on S3 a
        killed upload never becomes an object. They were never visible as output, only as disk use.
        """
        if self.is_s3:
            return
        import pyarrow.fs as pafs

        folder, _, name = self.fs_path(uri).rpartition("/")
        selector = pafs.FileSelector(folder, recursive=False, allow_not_found=True)
        for info in self.filesystem.get_file_info(selector):
            if info.base_name.startswith(f".tmp-{name}-"):
                try:
                    self.filesystem.delete_file(info.path)
                except OSError:
                    continue  # another attempt may be finishing with it; harmless to leave

    def list_files(self, uri: str, *, recursive: bool = True) -> list[str]:
        """URIs of the files under ``uri`` (temporary names excluded), sorted."""
        import pyarrow.fs as pafs

        base = self.fs_path(uri)
        selector = pafs.FileSelector(base, recursive=recursive, allow_not_found=True)
        prefix = "s3://" if self.is_s3 else ""
        found = [
            prefix + info.path
            for info in self.filesystem.get_file_info(selector)
            if info.type == pafs.FileType.File and not _is_temporary(info.path)
        ]
        return sorted(found)
