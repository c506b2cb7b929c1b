# puma's config for running under baton (docs/workers/puma.md).
#
# baton is the process manager: it runs N copies of puma, each in single
# mode, and rolls them one by one on `systemctl reload`. puma's own cluster
# mode (workers N), phased restarts and worker_timeout are baton's job.
workers 0
threads 4, 4

# Serve only the sockets baton passes (LISTEN_FDS): without 'only', puma
# also binds its default tcp://0.0.0.0:9292 and closes the passed socket
# when no bind matches it.
bind_to_activated_sockets 'only'

environment ENV.fetch('RACK_ENV', 'production')

# On SIGTERM puma stops accepting and finishes the requests it holds; baton's
# graceful-timeout bounds the drain from outside, so puma waits as long as
# it needs (its default, :forever). The connections still queued on the
# shared socket are left to the other workers: no drain_on_shutdown.
force_shutdown_after :forever

# Exit 0 after a graceful stop instead of re-raising SIGTERM.
raise_exception_on_sigterm false

# Each thread reads its own requests. With puma's default (true) a reactor
# buffers connections until their request is complete, and on SIGTERM it
# closes those that have sent nothing yet: a connection accepted a moment
# before the stop loses its request, which another worker would have
# served. Behind a proxy that buffers requests (nginx does), nothing is
# lost by this; facing slow clients directly, add threads.
queue_requests false

# When baton is gone (kill -9 or a crash, under the shipped unit's
# ExitType=cgroup), so is its notify socket, and the sd_notify gem raises
# on the STOPPING=1 that puma sends as its drain begins: the drain ends
# there and the requests in flight fail. A notification nobody can receive
# any more is dropped instead, and the drain goes on.
begin
  require 'sd_notify'
  module BatonQuietNotify
    def notify(state, unset_env = false)
      super
    rescue SdNotify::NotifyError
      nil
    end
  end
  SdNotify.singleton_class.prepend(BatonQuietNotify)
rescue LoadError
  nil # no sd_notify gem: puma has no systemd integration to guard
end
