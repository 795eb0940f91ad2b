#!/usr/bin/env python3
"""Fails on a call whose result is thrown away with a (void) cast.

In quantd, calls that can fail return absl::Status/StatusOr (or a library's
status); an error that cannot be returned is logged (util/logging.h), never
dropped. `(void)name;` for an unused parameter is fine; `(void)Call(...)` is
not. Product code only: tests may ignore what they do not check.

    check_dropped_errors.py SOURCE_ROOT
"""
import os
import re
import sys

DROPPED = re.compile(r'\(void\)\s*[A-Za-z_][\w:]*(\s*(\.|->)\s*[A-Za-z_]\w*)*'
                     r'\s*(<[^;]*>)?\s*\(')
FOLDERS = ('util', 'kernels', 'engine', 'server', 'client', 'fuzz')


def main():
  root = sys.argv[1]
  found, checked = [], 0
  for folder in FOLDERS:
    for dirpath, _, files in os.walk(os.path.join(root, folder)):
      for name in sorted(files):
        if not name.endswith(('.cc', '.h')) or name.endswith('_test.cc'):
          continue
        path = os.path.join(dirpath, name)
        rel = os.path.relpath(path, root)
        if '_test_util' in name or rel.startswith('engine/testing/'):
          continue
        checked += 1
        for n, line in enumerate(open(path, encoding='utf-8'), 1):
          code = line.split('//')[0]
          if DROPPED.search(code):
            found.append(f'{rel}:{n}: {line.strip()}')
  for f in found:
    print(f)
  print(f'dropped errors: {checked} files checked, {len(found)} calls whose '
        f'result is cast to void (return it, or log it with LogIfError)')
  return 1 if found else 0


if __name__ == '__main__':
  sys.exit(main())
