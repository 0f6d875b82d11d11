#include "runtime/request_stream.h"

#include <utility>

#include "core/check.h"

namespace lserve {

StreamChannel::StreamChannel(int64_t id, std::function<void()> on_cancel)
    : id_(id), on_cancel_(std::move(on_cancel)) {}

void StreamChannel::Push(StreamEvent event) {
  {
    std::lock_guard lock(mu_);
    LSERVE_CHECK(!closed_);
    if (event.finish.has_value()) closed_ = true;
    events_.push_back(std::move(event));
  }
  ready_.notify_all();
}

bool StreamChannel::closed() const {
  std::lock_guard lock(mu_);
  return closed_;
}

std::optional<StreamEvent> StreamChannel::Next(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  const auto ready = [&] { return !events_.empty() || finish_taken_; };
  // A year or more means "no timeout": adding it to now() could overflow.
  if (timeout >= std::chrono::hours(24 * 365)) {
    ready_.wait(lock, ready);
  } else {
    ready_.wait_for(lock, timeout, ready);
  }
  if (events_.empty()) return std::nullopt;
  StreamEvent event = std::move(events_.front());
  events_.pop_front();
  if (event.finish.has_value()) finish_taken_ = true;
  return event;
}

bool StreamChannel::finished() const {
  std::lock_guard lock(mu_);
  return finish_taken_;
}

void StreamChannel::Cancel() {
  {
    std::lock_guard lock(mu_);
    if (closed_) return;
  }
  if (cancel_requested_.exchange(true, std::memory_order_acq_rel)) return;
  if (on_cancel_) on_cancel_();
}

StreamHandle::~StreamHandle() {
  if (!channel_->closed()) channel_->Cancel();
}

}  // namespace lserve
