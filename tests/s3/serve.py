#!/usr/bin/python3
"""A real S3-protocol server for tests: s3rver behind a SigV4-checking proxy.

s3rver (npm) implements S3's object and multipart API on a folder, but it
accepts any well-formed V4 signature without computing it. So clients talk
to this proxy, which checks every request the way S3 does before passing it
on: the signature recomputed with botocore (AWS's own Python SDK core, an
implementation independent of libcurl's), the credential's key known, the
x-amz-content-sha256 header equal to the body's sha256, and, when a key is
limited to some buckets, the bucket among them (as a bucket policy would).
Refusals are S3's XML errors with S3's codes.

    tests/s3/serve.py --dir D --port-file F --key AK:SK[:bucket,...] \
        --bucket B [--bucket B2]

Writes the listening port to F once both servers are up; runs until killed
(SIGTERM stops s3rver too).
"""
import argparse
import hashlib
import http.client
import http.server
import os
import signal
import socket
import socketserver
import subprocess
import sys
import time
import urllib.parse

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

HERE = os.path.dirname(os.path.abspath(__file__))
S3RVER = os.path.join(HERE, 'node_modules', 's3rver', 'bin', 's3rver.js')


def free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def s3_error(code, message):
  return ('<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code>'
          '<Message>%s</Message></Error>' % (code, message)).encode()


def parse_authorization(value):
  """AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=..."""
  algorithm, _, rest = value.partition(' ')
  fields = {}
  for part in rest.split(','):
    name, _, v = part.strip().partition('=')
    fields[name] = v
  return algorithm, fields


class Proxy(http.server.BaseHTTPRequestHandler):
  protocol_version = 'HTTP/1.1'
  keys = {}  # access key -> (secret, allowed buckets or None)
  upstream = 0

  def log_message(self, fmt, *args):
    pass

  def refuse(self, status, code, message):
    body = s3_error(code, message)
    self.send_response(status)
    self.send_header('Content-Type', 'application/xml')
    self.send_header('Content-Length', str(len(body)))
    self.end_headers()
    if self.command != 'HEAD':
      self.wfile.write(body)

  def check(self, body):
    """None if S3 would accept the request, else (status, code, message)."""
    auth = self.headers.get('Authorization', '')
    algorithm, fields = parse_authorization(auth)
    if algorithm != 'AWS4-HMAC-SHA256':
      return 403, 'AccessDenied', 'requests must be signed with SigV4'
    scope = fields.get('Credential', '').split('/')
    if len(scope) != 5 or scope[3] != 's3' or scope[4] != 'aws4_request':
      return 400, 'AuthorizationHeaderMalformed', 'bad credential scope'
    access_key, _, region = scope[0], scope[1], scope[2]
    if access_key not in self.keys:
      return 403, 'InvalidAccessKeyId', 'unknown access key'
    secret, buckets = self.keys[access_key]
    bucket = urllib.parse.urlsplit(self.path).path.split('/')[1]
    if buckets is not None and bucket not in buckets:
      return 403, 'AccessDenied', 'this key may not use bucket ' + bucket
    declared = self.headers.get('x-amz-content-sha256', '')
    if declared != 'UNSIGNED-PAYLOAD' and declared != hashlib.sha256(
        body).hexdigest():
      return 400, 'XAmzContentSHA256Mismatch', 'body does not match its hash'
    signed = fields.get('SignedHeaders', '').split(';')
    if 'host' not in signed or 'x-amz-date' not in signed:
      return 403, 'AccessDenied', 'host and x-amz-date must be signed'
    url = 'http://%s%s' % (self.headers['Host'], self.path)
    headers = {h: self.headers[h] for h in signed if h != 'host'}
    request = AWSRequest(method=self.command, url=url, headers=headers,
                         data=body)
    request.context['timestamp'] = self.headers['x-amz-date']
    signer = S3SigV4Auth(Credentials(access_key, secret), 's3', region)
    canonical = signer.canonical_request(request)
    string_to_sign = signer.string_to_sign(request, canonical)
    if signer.signature(string_to_sign, request) != fields.get('Signature'):
      return 403, 'SignatureDoesNotMatch', 'the signature does not match'
    return None

  def forward(self):
    length = int(self.headers.get('Content-Length', '0'))
    body = self.rfile.read(length) if length > 0 else b''
    refusal = self.check(body)
    if refusal is not None:
      self.refuse(*refusal)
      return
    conn = http.client.HTTPConnection('127.0.0.1', self.upstream, timeout=120)
    headers = {k: v for k, v in self.headers.items()
               if k.lower() not in ('authorization', 'expect')}
    conn.request(self.command, self.path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    self.send_response(resp.status)
    for k, v in resp.getheaders():
      if k.lower() not in ('transfer-encoding', 'connection',
                           'content-length'):
        self.send_header(k, v)
    self.send_header('Content-Length',
                     resp.getheader('Content-Length', str(len(data)))
                     if self.command == 'HEAD' else str(len(data)))
    self.end_headers()
    if self.command != 'HEAD':
      self.wfile.write(data)
    conn.close()

  do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = forward


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
  daemon_threads = True


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--dir', required=True)
  parser.add_argument('--port-file', required=True)
  parser.add_argument('--key', action='append', required=True,
                      help='ACCESS:SECRET[:bucket,bucket]')
  parser.add_argument('--bucket', action='append', default=[])
  args = parser.parse_args()
  for k in args.key:
    parts = k.split(':')
    Proxy.keys[parts[0]] = (parts[1],
                            parts[2].split(',') if len(parts) > 2 else None)
  Proxy.upstream = free_port()
  command = ['node', S3RVER, '-d', args.dir, '-a', '127.0.0.1', '-p',
             str(Proxy.upstream), '--silent']
  for b in args.bucket:
    command += ['--configure-bucket', b]
  s3rver = subprocess.Popen(command)
  signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
  try:
    for _ in range(300):
      try:
        socket.create_connection(('127.0.0.1', Proxy.upstream), 1).close()
        break
      except OSError:
        if s3rver.poll() is not None:
          sys.exit('s3rver exited: is tests/s3/install.sh done?')
        time.sleep(0.1)
    server = Server(('127.0.0.1', 0), Proxy)
    with open(args.port_file + '.tmp', 'w') as f:
      f.write(str(server.server_address[1]))
    os.rename(args.port_file + '.tmp', args.port_file)
    server.serve_forever()
  finally:
    s3rver.terminate()
    s3rver.wait()


if __name__ == '__main__':
  main()
