"""The entry names git must not get from an agent's workspace: `.git` in all of git's spellings, and symlinks
named like git's own files (git reads those as configuration). Standard library only: it runs in the sandbox."""

from __future__ import annotations

# Names git refuses in a tree or gives a meaning of its own (protectNTFS is on by default, so its spellings too).
_GIT_NAMES = (".git", "git~1")
_LINK_NAMES = (".gitmodules", ".gitattributes", ".gitignore", ".mailmap")
# git's fall-back NTFS short-name prefixes for them (fsck.c is_ntfs_dot_generic): a symlink named "gitmod~1" or
# "gi7eba~1" is a .gitmodules symlink to fsck (an error) and to `git read-tree` (an invalid path).
_LINK_SHORT = {".gitmodules": "gi7eba", ".gitattributes": "gi7d29", ".gitignore": "gi250a", ".mailmap": "maba30"}
# Code points HFS+ ignores in names (utf8.c next_hfs_char): git fsck reads ".g\u200cit" as ".git".
_HFS_IGNORED = dict.fromkeys([0x200C, 0x200D, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x206A, 0x2070), 0xFEFF])


def name_problem(name: bytes, is_link: bool) -> str | None:
    """Why git must not get this entry name, or None."""
    try:
        text = name.decode("utf-8", "surrogateescape").lower()
    except UnicodeDecodeError:  # pragma: no cover - surrogateescape decodes anything
        return "a name that is not text"
    # git checks every backslash-separated part too (core.protectNTFS), and `.git` followed by dots or spaces.
    for part in text.translate(_HFS_IGNORED).split("\\"):
        base = part.split(":", 1)[0].rstrip(". ")
        if base in _GIT_NAMES:
            return "an entry named like .git (a repository or git's own files)"
        link_name = _link_name(base) if is_link else None
        if link_name:
            return f"a symlink named {link_name} (git reads it as its own configuration)"
    return None


def _link_name(base: str) -> str | None:
    """Which of git's own file names `base` spells, NTFS short names included ("gitmod~1", "gi7eba~1")."""
    for name, fallback in _LINK_SHORT.items():
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
