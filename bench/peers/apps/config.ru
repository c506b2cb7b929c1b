# The benchmark's Rack app for puma: the same as app.py (50 ms per request;
# the mode file makes it boot in 2 s or fail to boot).
path = ENV["APP_MODE_FILE"]
mode = path ? File.read(path).strip : "fast"
sleep 2 if mode == "slow"
raise "config.ru: broken on purpose (the mode file says broken)" if mode == "broken"

run lambda { |env|
  sleep 0.05
  body = "hello from pid #{Process.pid}\n"
  [200, { "Content-Type" => "text/plain", "Content-Length" => body.bytesize.to_s }, [body]]
}
