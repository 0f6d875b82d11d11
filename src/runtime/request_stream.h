// The two ends of one request's stream. The engine thread pushes events into
// a StreamChannel; the client reads them through a StreamHandle (the
// RequestStream of include/lserve/engine.h) from any thread.
//
// A channel is closed by the event that carries the finish; nothing is
// pushed after it. Cancel() only marks the request and tells the engine (the
// `on_cancel` callback); the engine ends the stream at its next step
// boundary with FinishKind::kCancelled, unless the request finished first.
// Dropping the last handle of a stream that has not finished cancels its
// request: nobody would read it.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>

#include "lserve/engine.h"

namespace lserve {

class StreamChannel {
 public:
  // `on_cancel` runs (once, on the thread that cancels) the first time
  // Cancel() is called before the channel closed.
  StreamChannel(int64_t id, std::function<void()> on_cancel);

  int64_t id() const { return id_; }

  // --- Engine side. ---
  // Appends an event; an event with `finish` set closes the channel.
  // Precondition: not closed.
  void Push(StreamEvent event);
  bool closed() const;
  bool cancel_requested() const { return cancel_requested_.load(std::memory_order_acquire); }

  // --- Client side. ---
  std::optional<StreamEvent> Next(std::chrono::milliseconds timeout);
  // The event with the finish has been taken.
  bool finished() const;
  void Cancel();

 private:
  const int64_t id_;
  std::function<void()> on_cancel_;
  std::atomic<bool> cancel_requested_{false};
  mutable std::mutex mu_;
  std::condition_variable ready_;
  std::deque<StreamEvent> events_;  // pushed, not yet taken
  bool closed_ = false;             // the finishing event was pushed
  bool finish_taken_ = false;       // ... and taken by Next
};

// The client's RequestStream: forwards to the channel and cancels the
// request when dropped before it finished.
class StreamHandle final : public RequestStream {
 public:
  explicit StreamHandle(std::shared_ptr<StreamChannel> channel) : channel_(std::move(channel)) {}
  ~StreamHandle() override;
  StreamHandle(const StreamHandle&) = delete;
  StreamHandle& operator=(const StreamHandle&) = delete;

  int64_t id() const override { return channel_->id(); }
  std::optional<StreamEvent> Next(std::chrono::milliseconds timeout) override { return channel_->Next(timeout); }
  bool finished() const override { return channel_->finished(); }
  void Cancel() override { channel_->Cancel(); }

 private:
  std::shared_ptr<StreamChannel> channel_;
};

}  // namespace lserve
