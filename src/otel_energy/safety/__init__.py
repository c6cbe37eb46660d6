"""What keeps local data safe: redacted command lines, private atomic files, escaped terminal text.

Layer 0 (it imports nothing of ours), so every layer that records a command or writes a file uses
the one copy: ``redact`` (credentials out of command lines), ``files`` (0600 files created
without following links, replaced atomically; 0700 directories), ``terminal`` (control
characters escaped before printing). The policy is docs/security.md.
"""
