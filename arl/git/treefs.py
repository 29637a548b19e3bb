"""Writing git trees out as files and removing whatever an agent left, on the host, as data.

Every operation works relative to open folder descriptors and never follows a symlink, so a link an agent planted
cannot redirect a write or a removal outside the folder; depth and path length do not matter (no path is ever
longer than one name); folders an agent made unreadable are opened up before they are emptied."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

from arl.git.gittree import EXEC, LINK

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


def wipe(root: Path) -> list[str]:
    """Empty `root` (the folder itself stays: it may be a container's mount point). Returns what could not be
    removed; an empty list means the folder is empty."""
    _open_up(root)
    try:
        top = os.open(root, _DIR_FLAGS)
    except OSError as e:
        return [f"{root}: {e.strerror}"]
    failed: list[str] = []
    try:
        # Non-empty folders are moved up into one flat trash folder and emptied from there: at most two folders
        # are open at any time, however deep the tree, and no path handed to the kernel is longer than a name.
        trash = _new_trash(top)
        tfd = os.open(trash, _DIR_FLAGS, dir_fd=top)
        try:
            queue = [name for name in os.listdir(top) if name != trash]
            counter = 0
            for name in queue:
                counter = _empty_into(top, name, tfd, counter, failed)
            while True:
                pending = os.listdir(tfd)
                if not pending:
                    break
                progress = False
                for name in pending:
                    before = counter
                    counter = _empty_into(tfd, name, tfd, counter, failed)
                    progress = progress or counter != before or not _exists(tfd, name)
                if not progress:
                    failed += [f"{root}/{trash}/{n}" for n in pending]
                    break
        finally:
            os.close(tfd)
        _rm(top, trash, failed, ok_missing=True)
    except OSError as e:
        failed.append(f"{root}: {e.strerror}")
    finally:
        os.close(top)
    return failed


def _new_trash(top: int) -> str:
    """A new folder in `top`, named like nothing there: a folder the agent named `.arl-wipe` is just an entry."""
    while True:
        name = f".arl-wipe-{os.urandom(6).hex()}"
        try:
            os.mkdir(name, 0o700, dir_fd=top)
            return name
        except FileExistsError:
            continue


def _exists(dfd: int, name: str) -> bool:
    try:
        os.lstat(name, dir_fd=dfd)
        return True
    except OSError:
        return False


def _empty_into(parent: int, name: str, trash: int, counter: int, failed: list[str]) -> int:
    """Remove `name` in `parent`; a folder's sub-folders are moved into `trash` for later. Returns the counter."""
    try:
        st = os.lstat(name, dir_fd=parent)
    except FileNotFoundError:
        return counter
    if not stat.S_ISDIR(st.st_mode):
        _rm(parent, name, failed)
        return counter
    try:
        os.rmdir(name, dir_fd=parent)
        return counter
    except OSError:
        pass
    try:
        if st.st_mode & 0o700 != 0o700:
            os.chmod(name, 0o700, dir_fd=parent)  # lstat said folder, and nothing else runs meanwhile
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
    except OSError as e:
        failed.append(f"{name}: {e.strerror}")
        return counter
    try:
        for child in os.listdir(fd):
            try:
                cst = os.lstat(child, dir_fd=fd)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(cst.st_mode):
                try:
                    if cst.st_mode & 0o700 != 0o700:
                        # Moving a folder rewrites its "..": without write permission on it the kernel refuses.
                        os.chmod(child, 0o700, dir_fd=fd)
                    os.rename(child, f"d{counter + 1}", src_dir_fd=fd, dst_dir_fd=trash)
                    counter += 1  # only a move is progress: a failed one retried forever would never end
                except OSError as e:
                    failed.append(f"{child}: {e.strerror}")
            else:
                _rm(fd, child, failed)
    finally:
        os.close(fd)
    try:
        os.rmdir(name, dir_fd=parent)
    except OSError:
        pass  # its sub-folders are still in the trash queue when parent is the trash: retried
    return counter


def _rm(dfd: int, name: str, failed: list[str], ok_missing: bool = True) -> None:
    try:
        st = os.lstat(name, dir_fd=dfd)
    except FileNotFoundError:
        return
    try:
        if stat.S_ISDIR(st.st_mode):
            os.rmdir(name, dir_fd=dfd)
        else:
            os.unlink(name, dir_fd=dfd)
    except OSError as e:
        if not (ok_missing and e.errno == errno.ENOENT) and not stat.S_ISDIR(st.st_mode):
            failed.append(f"{name}: {e.strerror}")


def _open_up(root: Path) -> None:
    try:
        st = os.lstat(root)
        if stat.S_ISDIR(st.st_mode) and st.st_mode & 0o700 != 0o700:
            os.chmod(root, 0o700)
    except OSError:
        pass


def write(root: Path, entries: Iterable[tuple[bytes, bytes, bytes]], replace: bool = True) -> None:
    """Write (path, mode, content) entries under `root`, sorted by path as `git ls-tree -r` gives them.

    Whatever is in the way (a link, a file where a folder goes, a folder where a file goes) is removed first:
    `root` must be host-owned or already wiped. A symlink's content is its target."""
    top = os.open(root, _DIR_FLAGS)
    stack: list[tuple[bytes, int]] = [(b"", top)]  # open folders along the current path
    try:
        for path, mode, data in entries:
            *dirs, name = path.split(b"/")
            prefix = b""
            depth = 0
            for d in dirs:
                prefix = prefix + b"/" + d if prefix else d
                depth += 1
                if depth < len(stack) and stack[depth][0] == prefix:
                    continue
                while len(stack) > depth:
                    os.close(stack.pop()[1])
                stack.append((prefix, _subdir(stack[-1][1], d)))
            while len(stack) > depth + 1:
                os.close(stack.pop()[1])
            _write_entry(stack[-1][1], name, mode, data, replace)
    finally:
        for _, fd in stack:
            os.close(fd)


def _subdir(parent: int, name: bytes) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        pass
    except OSError as e:
        if e.errno not in (errno.ENOTDIR, errno.ELOOP):
            raise
        os.unlink(name, dir_fd=parent)  # a file or link where a folder belongs
    os.mkdir(name, 0o755, dir_fd=parent)
    return os.open(name, _DIR_FLAGS, dir_fd=parent)


def _write_entry(dfd: int, name: bytes, mode: bytes, data: bytes, replace: bool) -> None:
    if replace:
        try:
            st = os.lstat(name, dir_fd=dfd)
            if stat.S_ISDIR(st.st_mode):
                raise IsADirectoryError(errno.EISDIR, "a folder is where a file belongs", os.fsdecode(name))
            os.unlink(name, dir_fd=dfd)
        except FileNotFoundError:
            pass
    if mode == LINK:
        os.symlink(data, name, dir_fd=dfd)
        return
    fd = os.open(
        name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o755 if mode == EXEC else 0o644, dir_fd=dfd
    )
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def remove(root: Path, paths: Iterable[bytes]) -> None:
    """Remove files (never folders' contents) at these paths, then the folders they leave empty."""
    top = os.open(root, _DIR_FLAGS)
    try:
        parents: set[bytes] = set()
        for path in paths:
            *dirs, name = path.split(b"/")
            _at(top, dirs, lambda fd, n=name: _unlink_file(fd, n))
            parents.update(b"/".join(dirs[:i]) for i in range(len(dirs), 0, -1))
        for d in sorted(parents, key=lambda p: -p.count(b"/")):
            *up, name = d.split(b"/")
            _at(top, up, lambda fd, n=name: os.rmdir(n, dir_fd=fd))  # fails, as it should, when not empty
    finally:
        os.close(top)


def _unlink_file(fd: int, name: bytes) -> None:
    if not stat.S_ISDIR(os.lstat(name, dir_fd=fd).st_mode):
        os.unlink(name, dir_fd=fd)


def _at(top: int, dirs: list[bytes], action: Callable[[int], None]) -> None:
    """Run `action(fd)` in the folder `dirs` below `top`, reached without following links; errors are ignored."""
    try:
        fd = _walk_to(top, dirs)
    except OSError:
        return
    try:
        action(fd)
    except OSError:
        pass
    finally:
        if fd != top:
            os.close(fd)


def _walk_to(top: int, dirs: list[bytes]) -> int:
    fd = top
    for d in dirs:
        nxt = os.open(d, _DIR_FLAGS, dir_fd=fd)
        if fd != top:
            os.close(fd)
        fd = nxt
    return fd
