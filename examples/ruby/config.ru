# A Rack application for baton's puma recipe (docs/workers/puma.md).
#
# GET /               "hello from worker N generation G pid P": which worker
#                     answered, so that tests can tell workers apart
# GET /sleep?ms=N     answers after N milliseconds; &flush=1 sends the
#                     headers and a first line at once, so a client knows a
#                     worker holds its request before it finishes
#
# Run under baton: puma -C examples/ruby/puma.rb examples/ruby/config.ru

require 'uri'

module Example
  def self.whoami
    "worker #{ENV.fetch('BATON_WORKER', '-')} generation #{ENV.fetch('BATON_GENERATION', '-')} pid #{Process.pid}"
  end
end

# A streamed body: puma writes each chunk as it is yielded.
class Sleeper
  def initialize(ms, flush)
    @ms = ms
    @flush = flush
  end

  def each
    yield "sleeping\n" if @flush
    sleep(@ms / 1000.0)
    yield "slept #{@ms}ms in #{Example.whoami}\n"
  end
end

run(lambda do |env|
  case env['PATH_INFO']
  when '/'
    [200, { 'Content-Type' => 'text/plain' }, ["hello from #{Example.whoami}\n"]]
  when '/sleep'
    query = URI.decode_www_form(env['QUERY_STRING'].to_s).to_h
    ms = Integer(query['ms'], exception: false)
    next [400, { 'Content-Type' => 'text/plain' }, ["want ?ms=N\n"]] if ms.nil? || ms.negative?

    [200, { 'Content-Type' => 'text/plain' }, Sleeper.new(ms, query['flush'] == '1')]
  else
    [404, { 'Content-Type' => 'text/plain' }, ["not found\n"]]
  end
end)
