#!/usr/bin/env python3
"""Reports (and with --max-* fails on) long files and long functions.

A function is measured from the line of its opening brace at namespace
depth to its closing brace; lambdas and nested blocks count toward the
function that holds them. Tests (*_test.cc, *_test_util*, testing/) and
generated code are left out: the limits are for product code.

    check_sizes.py ROOT [--max-file-lines 600] [--max-function-lines 80]
"""
import argparse
import os
import re
import sys

SKIP_DIRS = {'build', '.git', 'node_modules', 'third_party'}
SOURCE = re.compile(r'\.(cc|h)$')


def is_test(path):
  name = os.path.basename(path)
  return (name.endswith('_test.cc') or '_test_util' in name or
          '/testing/' in path or path.startswith('tests/') or
          path.startswith('bench/'))


def strip(text):
  """Blanks comments and string/char literals, keeping line breaks."""
  out, i, n = [], 0, len(text)
  while i < n:
    c = text[i]
    if text.startswith('//', i):
      j = text.find('\n', i)
      j = n if j < 0 else j
      i = j
    elif text.startswith('/*', i):
      j = text.find('*/', i + 2)
      j = n if j < 0 else j + 2
      out.append('\n' * text.count('\n', i, j))
      i = j
    elif text.startswith('R"', i):
      m = re.match(r'R"([^(]*)\(', text[i:])
      end = text.find(')' + m.group(1) + '"', i) if m else -1
      j = n if end < 0 else end + len(m.group(1)) + 2
      out.append('""' + '\n' * text.count('\n', i, j))
      i = j
    elif c in '"\'':
      j = i + 1
      while j < n and text[j] != c:
        j += 2 if text[j] == '\\' else 1
      out.append(c + c)
      i = j + 1
    else:
      out.append(c)
      i += 1
  return ''.join(out)


def functions(text):
  """(name, first_line, lines) of every brace block that opens a function
  body at namespace/class depth."""
  code = strip(text)
  result, stack = [], []  # stack of (kind, line, name)
  line = 1
  for i, c in enumerate(code):
    if c == '\n':
      line += 1
    elif c == '{':
      head = code[max(0, i - 300):i]
      head_line = head.split(';')[-1].split('}')[-1]
      is_scope = re.search(r'\b(namespace|class|struct|union|enum)\b[^()]*$',
                           head_line) or re.search(r'extern\s+"C"', head_line)
      in_function = any(k == 'function' for k, _, _ in stack)
      if in_function:
        stack.append(('block', line, ''))
      elif is_scope or not re.search(r'\)\s*(const|override|final|noexcept|'
                                     r'->\s*[\w:<>,\s*&]+|\s)*$|'
                                     r'\)\s*:\s*[\s\S]*$', head_line):
        stack.append(('scope', line, ''))
      else:
        m = re.search(r'([\w:~]+)\s*\([^()]*(\([^()]*\)[^()]*)*\)[^()]*$',
                      head_line)
        stack.append(('function', line, m.group(1) if m else '?'))
    elif c == '}' and stack:
      kind, start, name = stack.pop()
      if kind == 'function':
        result.append((name, start, line - start + 1))
  return result


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument('root')
  ap.add_argument('--max-file-lines', type=int, default=0)
  ap.add_argument('--max-function-lines', type=int, default=0)
  ap.add_argument('--top', type=int, default=10)
  args = ap.parse_args()
  files, funcs = [], []
  for dirpath, dirnames, filenames in os.walk(args.root):
    # build-asan/, build-tsan/ (tools/sanitize.sh) hold generated code too.
    dirnames[:] = [d for d in dirnames
                   if d not in SKIP_DIRS and not d.startswith('build-')]
    for f in filenames:
      if not SOURCE.search(f):
        continue
      path = os.path.relpath(os.path.join(dirpath, f), args.root)
      if is_test(path):
        continue
      text = open(os.path.join(dirpath, f), encoding='utf-8').read()
      files.append((text.count('\n'), path))
      for name, start, n in functions(text):
        funcs.append((n, f'{path}:{start}', name))
  files.sort(reverse=True)
  funcs.sort(reverse=True)
  print(f'longest files (of {len(files)}):')
  for n, p in files[:args.top]:
    print(f'  {n:5d}  {p}')
  print(f'longest functions (of {len(funcs)}):')
  for n, where, name in funcs[:args.top]:
    print(f'  {n:5d}  {where}  {name}')
  bad = []
  if args.max_file_lines:
    bad += [f'{p}: {n} lines (limit {args.max_file_lines})'
            for n, p in files if n > args.max_file_lines]
  if args.max_function_lines:
    bad += [f'{w}: {name} is {n} lines (limit {args.max_function_lines})'
            for n, w, name in funcs if n > args.max_function_lines]
  for b in bad:
    print('too long:', b)
  return 1 if bad else 0


if __name__ == '__main__':
  sys.exit(main())
