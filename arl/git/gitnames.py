"""The entry names git must not get from an agent's workspace: `.git` in all of git's spellings, `.gitmodules`
(submodule configuration: `git fsck` and hosting servers refuse some of its settings), git's own files when they are
not regular files, and `.gitattributes` that `git fsck` flags or that make `git archive` differ from the tree (export
and conversion attributes). Standard library only: it runs in the sandbox."""

from __future__ import annotations

import stat

# Names git refuses in a tree or gives a meaning of its own (protectNTFS is on by default, so its spellings too).
_GIT_NAMES = (".git", "git~1")
_OWN_FILES = (".gitmodules", ".gitattributes", ".gitignore", ".mailmap")
# git's fall-back NTFS short-name prefixes for them (fsck.c is_ntfs_dot_generic): a symlink named "gitmod~1" or
# "gi7eba~1" is a .gitmodules symlink to fsck (an error) and to `git read-tree` (an invalid path).
_SHORT = {".gitmodules": "gi7eba", ".gitattributes": "gi7d29", ".gitignore": "gi250a", ".mailmap": "maba30"}
# Code points HFS+ ignores in names (utf8.c next_hfs_char): git fsck reads ".g\u200cit" as ".git".
_HFS_IGNORED = dict.fromkeys([0x200C, 0x200D, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x206A, 0x2070), 0xFEFF])
# Attributes that make `git archive` (and a checkout) write other bytes than the tree holds, or leave files out.
_ARCHIVE_ATTRS = ("export-ignore", "export-subst", "ident", "filter", "working-tree-encoding", "eol")
_MAX_LINE, _MAX_SIZE = 2048, 100 * 1024 * 1024  # git's attr.c limits: fsck reports longer lines, larger files
_BLANK = b" \t\r\n"


def name_problem(name: bytes, mode: int) -> str | None:
    """Why git must not get an entry of this name and type (an lstat st_mode), or None."""
    try:
        text = name.decode("utf-8", "surrogateescape").lower()
    except UnicodeDecodeError:  # pragma: no cover - surrogateescape decodes anything
        return "a name that is not text"
    # git checks every backslash-separated part too (core.protectNTFS), and `.git` followed by dots or spaces.
    for part in text.translate(_HFS_IGNORED).split("\\"):
        base = part.split(":", 1)[0].rstrip(". ")
        if base in _GIT_NAMES:
            return "an entry named like .git (a repository or git's own files)"
        own = spelled(base)
        if own and stat.S_ISLNK(mode):
            return f"a symlink named {own} (git reads it as its own configuration)"
        if own == ".gitmodules":
            return "a .gitmodules (submodule configuration: git fsck and hosting servers refuse some of it)"
        if own and not stat.S_ISREG(mode):
            return f"not a regular file, named {own} (git reads that name as its own file; git fsck flags it)"
    return None


def is_attributes(name: bytes) -> bool:
    """Does git (fsck, or git archive on some system) read this name as a .gitattributes file?"""
    text = name.decode("utf-8", "surrogateescape").lower().translate(_HFS_IGNORED)
    return any(spelled(p.split(":", 1)[0].rstrip(". ")) == ".gitattributes" for p in text.split("\\"))


def spelled(base: str) -> str | None:
    """Which of git's own file names `base` spells, NTFS short names included ("gitmod~1", "gi7eba~1")."""
    for name, fallback in _SHORT.items():
        if base == name or (len(base) == 8 and base[:7] == name[1:7] + "~" and base[7] in "1234"):
            return name
        tilde = base.find("~")
        if (
            len(base) == 8
            and 0 <= tilde <= 6
            and base[:tilde] == fallback[:tilde]
            and base[tilde + 1 : tilde + 2] in set("123456789")
            and all(c in "0123456789" for c in base[tilde + 2 :])
        ):
            return name
    return None


def attributes_problem(data: bytes) -> str | None:
    """Why a .gitattributes must not be kept: what `git fsck` flags (a line of 2,048 bytes or more, over 100 MB), or an
    attribute that makes `git archive` of a keep differ from the verified tree. None when it is harmless."""
    if len(data) > _MAX_SIZE:
        return f"a .gitattributes over {_MAX_SIZE // (1024 * 1024)} MB (git fsck reports it)"
    lines = data.split(b"\0", 1)[0].split(b"\n")  # fsck reads up to the first NUL
    if any(len(line) >= _MAX_LINE for line in lines):
        return f"a .gitattributes line of {_MAX_LINE} bytes or more (git fsck reports it)"
    for line in lines:
        for attr in _attributes(line):
            if attr in _ARCHIVE_ATTRS:
                return (
                    f"the attribute {attr} in a .gitattributes (git archive and checkouts would then differ from "
                    "the evaluated files)"
                )
    return None


def _attributes(line: bytes) -> list[str]:
    """The attribute names a .gitattributes line sets, unsets or defines (attr.c parse_attr_line)."""
    line = line.lstrip(_BLANK)
    if not line or line.startswith(b"#"):
        return []
    if line.startswith(b"[attr]"):
        rest = line[len(b"[attr]") :].lstrip(_BLANK)
        rest = rest[len(rest.split(None, 1)[0]) :] if rest.split(None, 1) else b""
    elif line.startswith(b'"'):
        end, i = -1, 1
        while i < len(line):
            if line[i : i + 1] == b"\\":
                i += 2
                continue
            if line[i : i + 1] == b'"':
                end = i
                break
            i += 1
        rest = line[end + 1 :] if end > 0 else b""
    else:
        rest = line[len(line.split(None, 1)[0]) :]
    names = []
    for token in rest.split():
        names.append(token.lstrip(b"-!").split(b"=", 1)[0].decode("utf-8", "replace"))
    return names
