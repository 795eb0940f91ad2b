#!/usr/bin/env python3
"""Fails when an #include crosses the layering the build declares.

CMake records each library's folders and the quantd libraries it links
(quantd_layer() in cmake/quantd_helpers.cmake) into build/layers.txt:

    quantd_engine_quantization|engine/quantization|quantd_engine_calibration

A product source file may include headers of its own library and of the
libraries reachable through those declared links, nothing else: an include
that points up (engine/runtime including engine/pipeline) or sideways
(engine/data including engine/calibration) fails with the file and line.
Tests (*_test.cc, *_test_util*, engine/testing/) may reach further, since no
product code links them. The declared links themselves must be acyclic.

    check_layering.py build/layers.txt SOURCE_ROOT
"""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def load(table_path):
  folders, deps = {}, {}
  for line in open(table_path):
    line = line.strip()
    if not line:
      continue
    target, folder_list, dep_list = line.split('|')
    folders[target] = [f for f in folder_list.split(',') if f]
    deps[target] = [d for d in dep_list.split(',') if d]
  return folders, deps


def closure(deps):
  """target -> every target reachable through declared links; exits on a
  cycle, naming it."""
  done, out = set(), {}

  def visit(t, path):
    if t in path:
      sys.exit('layering: declared links form a cycle: ' +
               ' -> '.join(path[path.index(t):] + [t]))
    if t in done:
      return out[t]
    reach = set()
    for d in deps.get(t, []):
      if d not in deps:
        continue  # an INTERFACE or external target: not a quantd folder
      reach.add(d)
      reach |= visit(d, path + [t])
    done.add(t)
    out[t] = reach
    return reach

  for t in deps:
    visit(t, [])
  return out


def owner_of(path, folders):
  """The library whose folder is the longest prefix of `path`."""
  best, best_len = None, -1
  for target, fs in folders.items():
    for f in fs:
      if (path.startswith(f + '/') and os.path.dirname(path) == f and
          len(f) > best_len):
        best, best_len = target, len(f)
  return best


def include_owner(inc, folders):
  if inc.startswith('quantd/v1/service'):
    return 'quantd_service_proto'
  if inc.startswith('quantd/v1/'):
    return 'quantd_proto'
  return owner_of(inc, folders)


def is_test_file(path):
  name = os.path.basename(path)
  return (name.endswith('_test.cc') or '_test_util' in name or
          path.startswith('engine/testing/'))


def main():
  table, root = sys.argv[1], sys.argv[2]
  folders, deps = load(table)
  reach = closure(deps)
  errors, checked = [], 0
  for target, fs in folders.items():
    for folder in fs:
      full = os.path.join(root, folder)
      if not os.path.isdir(full):
        continue
      for name in sorted(os.listdir(full)):
        if not name.endswith(('.cc', '.h')):
          continue
        rel = f'{folder}/{name}'
        if is_test_file(rel):
          continue
        checked += 1
        text = open(os.path.join(full, name), encoding='utf-8').read()
        for m in INCLUDE.finditer(text):
          inc = m.group(1)
          dep = include_owner(inc, folders)
          if dep is None or dep == target or dep in reach[target]:
            continue
          line = text.count('\n', 0, m.start()) + 1
          errors.append(f'{rel}:{line}: includes "{inc}" of {dep}, but '
                        f'{target} does not link it (declared: '
                        f'{", ".join(deps[target]) or "nothing"})')
  for e in errors:
    print(e)
  print(f'layering: {checked} files in {len(folders)} libraries checked, '
        f'{len(errors)} reverse or undeclared includes')
  return 1 if errors else 0


if __name__ == '__main__':
  sys.exit(main())
