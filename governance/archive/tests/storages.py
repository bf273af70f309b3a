"""Object stores with a fault, for tests: real files on disk, one thing going wrong."""

from pathlib import Path

from django.core.files.storage import FileSystemStorage


class CorruptingStorage(FileSystemStorage):
    """Stores the file, then flips one byte of it: the read-back must catch it."""

    def _save(self, name, content):
        name = super()._save(name, content)
        with Path(self.path(name)).open("r+b") as stored:
            stored.seek(20)
            byte = stored.read(1)
            stored.seek(20)
            stored.write(bytes([byte[0] ^ 0xFF]))
        return name


class ForgetfulStorage(FileSystemStorage):
    """Says it stored the file and stores nothing."""

    def _save(self, name, content):
        return name
