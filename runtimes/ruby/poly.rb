# wws Ruby polyfill: the worker API (Request, Response, Cache) and the stdio protocol.
#
# The wrapper loads this file before the worker's source and calls `WWS.main` after it. The API
# is the one of the original Wasm Workers Server, so workers written for it run unchanged; see
# runtimes/README.md for the user documentation.
#
# Protocol: one request JSON object on stdin, one response JSON object on stdout. While a worker
# runs, `$stdout` points at `$stderr`, so `puts` in a worker goes to the server log and can never
# corrupt the response, which is written to STDOUT at the end. With `WWS_REUSE=1` the wrapper
# serves a sequence of length-prefixed requests instead (framing in runtimes/README.md).
#
# A failure is signalled by raising: the interpreter reports it and the host answers 500. The
# Ruby reactor build is driven through `rb-eval-string-protect`, which turns an exception into a
# non-zero state; `exit` would work too, `exit!` ends the instance without flushing.

# The runtime starts Ruby with --disable-gems: loading RubyGems costs about 200 ms per instance in
# WASI, six times the rest of the interpreter's start. The bundled gems shipped inside the
# interpreter (e.g. base64, csv, rexml on Ruby 3.4) stay loadable through their lib folders.
unless defined?(Gem)
  require 'rbconfig'
  gems = File.join(RbConfig::CONFIG['rubylibprefix'], 'gems', RbConfig::CONFIG['ruby_version'], 'gems')
  $LOAD_PATH.concat(Dir.glob(File.join(gems, '*', 'lib')).sort)
end

require 'json'

# Until WWS.main ends, standard output is the log: `puts` anywhere in the worker's file, also at
# its top level, cannot corrupt the response, which goes to STDOUT.
$stdout = $stderr

# The worker's key/value namespace: a snapshot in, the new state out. Keys and values are strings.
class Cache
  @@kv = {}

  def self.init(kv)
    @@kv = kv || {}
  end

  def self.dump
    @@kv
  end

  def self.get(key)
    @@kv[key.to_s]
  end

  def self.set(key, value)
    @@kv[key.to_s] = value.to_s
  end

  def self.delete(key)
    @@kv.delete(key.to_s)
  end
end

# The incoming HTTP request. `body` is a UTF-8 String, or a binary (ASCII-8BIT) String when the
# request body was not valid UTF-8. `headers` maps lower-case names to values; `params` holds the
# dynamic route segments (`[id]` -> `params["id"]`).
class Request
  attr_reader :url, :body, :method, :headers, :params

  def initialize(url, body, method, headers, params, kv = nil)
    @url = url
    @body = body
    @method = method
    @headers = headers
    @params = params
    Cache.init(kv) unless kv.nil?
  end
end

# What a worker returns: `Response.new(body, status_code = 200, headers = {})`.
#
# A String body is sent as text when it is valid UTF-8 (or converts to it) and as bytes when it
# is binary (`File.binread`, `.b`, `force_encoding("BINARY")`). A Hash or Array body is sent as
# JSON. A header value may be an Array to send the header several times (e.g. `Set-Cookie`).
class Response
  attr_accessor :body, :status_code, :headers

  def initialize(body, status_code = 200, headers = {})
    @body = body
    @status_code = status_code
    @headers = headers
  end

  def self.ok(body)
    new(body)
  end

  def self.created(body)
    new(body, 201)
  end

  def self.not_found(body)
    new(body, 404)
  end

  # The response as the output object of the wws protocol, without `kv`.
  def to_h
    headers = {}
    (@headers || {}).each do |name, value|
      headers[name.to_s] = value.is_a?(Array) ? value.map(&:to_s) : value.to_s
    end

    content = @body
    encoded = false
    case content
    when nil
      content = ''
    when String
      text = WWS.utf8(content)
      if text.nil?
        content = [content].pack('m0')
        encoded = true
      else
        content = text
      end
    when Hash, Array
      content = JSON.generate(content)
      headers['content-type'] = 'application/json' unless headers.keys.any? { |k| k.downcase == 'content-type' }
    else
      content = content.to_s
    end

    { 'data' => content, 'base64' => encoded, 'status' => @status_code.to_i, 'headers' => headers }
  end

  # The complete output object as JSON text (the original polyfill's `to_s`).
  def to_s
    JSON.generate(to_h.merge('kv' => Cache.dump))
  end
end

# Kept from the original polyfill: builds a Request from the input JSON text.
def json_to_request(input)
  WWS.request(JSON.parse(input))
end

# The protocol side: request decoding, output encoding, single and reuse mode.
# An outbound request that was refused or failed: `kind` is one of the kinds of Python's
# HttpError (runtimes/README.md), `message` says why.
class HttpError < StandardError
  attr_reader :kind

  def initialize(kind, message)
    super(message)
    @kind = kind
  end
end

# The answer to `fetch`: `status`, `headers` (lower-case names; a repeated header's values
# joined with ", "), `header_list` (every [name, value] as received, for set-cookie), `body`
# (a binary String), `url` (after redirects) and `redirected`.
class FetchResponse
  attr_reader :status, :headers, :header_list, :body, :url, :redirected

  def initialize(answer)
    @status = answer['status']
    @header_list = (answer['headers'] || []).map { |name, value| [name.downcase, value] }
    @headers = {}
    @header_list.each do |name, value|
      @headers[name] = @headers.key?(name) ? "#{@headers[name]}, #{value}" : value
    end
    @body = (answer['body'] || '').unpack1('m')
    @url = answer['url'] || ''
    @redirected = answer['redirected'] ? true : false
  end

  def ok?
    (200..299).cover?(@status)
  end

  def text
    @body.dup.force_encoding('UTF-8').scrub
  end

  def json
    JSON.parse(text)
  end
end

# Makes an outbound HTTP request through the host and returns a FetchResponse. `headers` is a
# Hash, `body` a String or nil, `redirect` 'follow', 'manual' or 'error'. Only hosts the
# worker's `[features.http_requests]` allows can be reached; a refusal or a failure raises
# HttpError. The request goes over the reuse protocol (a call frame on stdout, its answer on
# stdin), so it needs reuse mode, which Ruby workers have unless their TOML sets
# `[runtime] reuse = false`.
def fetch(url, method: 'GET', headers: {}, body: nil, redirect: 'follow')
  unless ENV['WWS_REUSE'] == '1'
    raise HttpError.new('not-available', "outbound HTTP needs reuse mode: remove `reuse = false` from the worker's [runtime] table")
  end
  request = {
    'method' => method.to_s,
    'url' => url.to_s,
    'headers' => headers.map { |name, value| [name.to_s, value.to_s] },
    'body' => body.nil? ? nil : [body.to_s].pack('m0'),
    'redirect' => redirect.to_s
  }
  out = JSON.generate(request)
  WWS.write("H#{out.bytesize}\n#{out}")
  answer = WWS.read_frame
  raise HttpError.new('internal-error', "the host closed the worker's input before answering") if answer.nil?
  answer = JSON.parse(answer.force_encoding('UTF-8'))
  raise HttpError.new(answer['error'], answer['message'].to_s) if answer.key?('error')
  FetchResponse.new(answer)
end

module WWS
  # `text` as a UTF-8 String, or nil when it holds bytes that are not text.
  def self.utf8(text)
    return nil if text.encoding == Encoding::BINARY && !text.ascii_only?
    utf8 = text.encoding == Encoding::UTF_8 ? text : text.encode('UTF-8')
    utf8.valid_encoding? ? utf8 : nil
  rescue EncodingError
    nil
  end

  # A Request from the parsed input object; binary bodies arrive base64-encoded.
  def self.request(input)
    body = input['body'] || ''
    body = body.unpack1('m') if input['base64']
    Request.new(input['url'], body, input['method'], input['headers'] || {}, input['params'] || {})
  end

  # Runs the worker on one parsed request object and returns the output object.
  def self.handle(input)
    Cache.init(input['kv'])
    $stdout = $stderr
    res = worker(request(input))
    res = Response.new(res) if res.is_a?(String)
    raise TypeError, "worker(req) must return a Response, not #{res.class}" unless res.is_a?(Response)
    res.to_h.merge('kv' => Cache.dump)
  end

  def self.write(data)
    STDOUT.write(data)
    STDOUT.flush
  end

  # Reads exactly one frame (`<length>\n<json>`) from stdin; nil at the end of input.
  def self.read_frame
    header = STDIN.gets("\n")
    return nil if header.nil?
    size = Integer(header.strip)
    payload = STDIN.read(size) || ''
    raise EOFError, "request frame truncated: #{payload.bytesize} of #{size} bytes" if payload.bytesize != size
    payload
  end

  # Entry point called by the wrapper after the worker's source.
  def self.main
    unless Object.private_method_defined?(:worker) || Object.method_defined?(:worker)
      raise NameError, 'the worker must define a method `worker(req)` that returns a Response'
    end
    STDIN.binmode
    if ENV['WWS_REUSE'] == '1'
      while (payload = read_frame)
        out = JSON.generate(handle(JSON.parse(payload.force_encoding('UTF-8'))))
        write("#{out.bytesize}\n#{out}")
        $stderr.flush
      end
    else
      write(JSON.generate(handle(JSON.parse(STDIN.read.force_encoding('UTF-8')))))
    end
  ensure
    $stdout = STDOUT
  end
end
