# Worker used by runtimes/dev/selftest.py: one behaviour per URL path.
require 'stringio'

$hits = 0 # global: persists between requests in reuse mode only
puts 'top-level puts goes to the log'

def worker(req)
  $hits += 1
  path = req.url.split('?').first.split('/', 4)[3]

  case path
  when 'hello'
    Response.new("Hello from Ruby #{RUBY_VERSION}")
  when 'params'
    Response.ok("id=#{req.params['id']} method=#{req.method} ua=#{req.headers['user-agent']}")
  when 'env'
    Response.new("#{ENV['MESSAGE']}|#{ENV['PYTHONDONTWRITEBYTECODE']}")
  when 'counter'
    count = Cache.get('count').to_i + 1
    Cache.set('count', count)
    Cache.delete('stale')
    Response.new(count.to_s, 200, { 'x-hits' => $hits })
  when 'folder'
    Response.new(File.read('/data/message.txt'))
  when 'binary'
    Response.new((0..255).to_a.pack('C*'), 200, { 'content-type' => 'application/octet-stream' })
  when 'echo-binary'
    Response.new("#{req.body.encoding} #{req.body.bytesize} #{req.body.byteslice(0, 4).unpack1('H*')}")
  when 'headers'
    res = Response.created('cookies')
    res.headers = { 'set-cookie' => ['a=1', 'b=2'], 'x-one' => '1' }
    res
  when 'json'
    Response.new({ ok: true, n: 3 })
  when 'print'
    puts 'this goes to the log, not the response'
    print "so does this\n"
    Response.new('clean')
  when 'echo'
    Response.new("#{req.method} #{req.body.length} #{req.body}", 200, { 'x-unicode' => 'héllo ✓' })
  when 'hijack'
    $stdout = StringIO.new # the wrapper restores the redirection for the next request
    puts 'lost'
    Response.new('hijacked')
  when 'fail'
    raise 'boom from the worker'
  when 'exit'
    exit 3
  when 'exit-bang'
    exit! 4
  else
    Response.not_found('not found')
  end
end
