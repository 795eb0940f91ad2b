#!/usr/bin/env python3
"""Clang's -Wthread-safety over every product file that uses a mutex.

The project builds with g++, which ignores ABSL_GUARDED_BY and friends;
this runs clang in -fsyntax-only mode (no code generation, seconds per file)
with each file's own flags from build/compile_commands.json, and fails on
any thread-safety warning: a guarded member touched without its lock, a
lock not released on every path.

    check_thread_safety.py build/compile_commands.json SOURCE_ROOT
"""
import json
import os
import re
import shlex
import subprocess
import sys

MUTEX = re.compile(r'\babsl::Mutex\b')


def main():
  db_path, root = sys.argv[1], os.path.realpath(sys.argv[2])
  db = json.load(open(db_path))
  failures, checked = 0, 0
  for entry in db:
    path = os.path.realpath(entry['file'])
    rel = os.path.relpath(path, root)
    if rel.startswith(('build', 'tests/', 'bench/')) or rel.endswith('_test.cc'):
      continue
    header = re.sub(r'\.cc$', '.h', path)
    text = open(path, encoding='utf-8').read()
    if os.path.exists(header):
      text += open(header, encoding='utf-8').read()
    if not MUTEX.search(text):
      continue
    args = shlex.split(entry['command'])[1:]
    keep, skip = [], False
    for a in args:
      if skip:
        skip = False
        continue
      if a in ('-o', '-MF', '-MT'):
        skip = True
        continue
      if a in ('-c', '-MD', '-Werror') or a == entry['file']:
        continue
      keep.append(a)
    cmd = (['clang++', '-fsyntax-only', '-Wno-everything', '-Wthread-safety',
            '-Werror=thread-safety'] + keep + [entry['file']])
    r = subprocess.run(cmd, cwd=entry['directory'], capture_output=True,
                       text=True)
    checked += 1
    if r.returncode != 0:
      failures += 1
      print(f'--- {rel}\n{r.stderr}')
  print(f'thread-safety: {checked} files checked, {failures} with findings')
  return 1 if failures else 0


if __name__ == '__main__':
  sys.exit(main())
