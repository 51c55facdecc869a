#include "parallel/thread_comm.h"

#include <algorithm>
#include <barrier>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <tuple>

namespace strata {
namespace {

// State shared by the ranks of one group.
struct Group {
  explicit Group(int n) : size(n), barrier(n), slots(n, nullptr), colors(n), keys(n), mail(n * n) {}
  int size;
  std::barrier<> barrier;
  std::vector<const void*> slots;  // per-rank pointers published for a collective
  std::vector<int> colors, keys;
  std::mutex mu;
  std::map<std::pair<int, int>, std::shared_ptr<Group>> children;  // (split number, color)
  struct Mailbox {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::vector<char>> messages;
  };
  std::vector<Mailbox> mail;  // [src * size + dst], the data plane
  // HostComm's tagged messages: (src, dst, tag) -> queue.
  std::mutex ctrl_mu;
  std::condition_variable ctrl_cv;
  std::map<std::tuple<int, int, int>, std::deque<std::vector<char>>> ctrl;

  std::vector<char> TakeControl(int src, int dst, int tag) {
    std::unique_lock<std::mutex> lock(ctrl_mu);
    auto& q = ctrl[{src, dst, tag}];
    ctrl_cv.wait(lock, [&] { return !q.empty(); });
    std::vector<char> m = std::move(q.front());
    q.pop_front();
    return m;
  }
};

// Thread sends never block, so a receive can wait until Wait() without risking a deadlock.
class ThreadPendingRecv : public PendingRecv {
 public:
  ThreadPendingRecv(Group* g, int src, int dst, int tag, void* data, size_t bytes)
      : g_(g), src_(src), dst_(dst), tag_(tag), data_(data), bytes_(bytes) {}
  absl::Status Wait() override {
    std::vector<char> m = g_->TakeControl(src_, dst_, tag_);
    if (m.size() != bytes_) return absl::InternalError("thread comm: message size does not match the receive");
    std::memcpy(data_, m.data(), bytes_);
    return absl::OkStatus();
  }

 private:
  Group* g_;
  int src_, dst_, tag_;
  void* data_;
  size_t bytes_;
};

class ThreadHostComm : public HostComm {
 public:
  ThreadHostComm(std::shared_ptr<Group> g, int rank) : g_(std::move(g)), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return g_->size; }
  absl::Status Broadcast(void* data, size_t bytes, int root) override {
    if (rank_ == root) g_->slots[root] = data;
    g_->barrier.arrive_and_wait();
    if (rank_ != root) std::memcpy(data, g_->slots[root], bytes);
    g_->barrier.arrive_and_wait();
    return absl::OkStatus();
  }
  absl::Status Barrier() override {
    g_->barrier.arrive_and_wait();
    return absl::OkStatus();
  }
  absl::Status Send(const void* data, size_t bytes, int peer, int tag) override {
    std::lock_guard<std::mutex> lock(g_->ctrl_mu);
    g_->ctrl[{rank_, peer, tag}].emplace_back(static_cast<const char*>(data), static_cast<const char*>(data) + bytes);
    g_->ctrl_cv.notify_all();
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<char>> Recv(int peer, int tag) override { return g_->TakeControl(peer, rank_, tag); }
  absl::StatusOr<std::unique_ptr<PendingRecv>> RecvAsync(void* data, size_t bytes, int peer, int tag) override {
    return std::unique_ptr<PendingRecv>(std::make_unique<ThreadPendingRecv>(g_.get(), peer, rank_, tag, data, bytes));
  }
  absl::StatusOr<bool> TryRecv(int tag, std::vector<char>* out, int* source) override {
    std::lock_guard<std::mutex> lock(g_->ctrl_mu);
    for (int src = 0; src < g_->size; ++src) {
      auto it = g_->ctrl.find({src, rank_, tag});
      if (it == g_->ctrl.end() || it->second.empty()) continue;
      *out = std::move(it->second.front());
      it->second.pop_front();
      *source = src;
      return true;
    }
    return false;
  }
  std::unique_ptr<HostComm> Split(int color, int key) override {
    g_->colors[rank_] = color;
    g_->keys[rank_] = key;
    g_->barrier.arrive_and_wait();
    std::vector<std::pair<int, int>> members;  // (key, rank) of my color
    for (int r = 0; r < g_->size; ++r)
      if (g_->colors[r] == color) members.push_back({g_->keys[r], r});
    std::sort(members.begin(), members.end());
    int my = 0;
    for (size_t i = 0; i < members.size(); ++i)
      if (members[i].second == rank_) my = static_cast<int>(i);
    std::shared_ptr<Group> child;
    {
      std::lock_guard<std::mutex> lock(g_->mu);
      auto& slot = g_->children[{splits_, color}];
      if (!slot) slot = std::make_shared<Group>(static_cast<int>(members.size()));
      child = slot;
    }
    ++splits_;
    g_->barrier.arrive_and_wait();
    return std::make_unique<ThreadHostComm>(child, my);
  }
  [[noreturn]] void Abort(const std::string& why) override {
    std::fprintf(stderr, "strata thread rank %d: aborting: %s\n", rank_, why.c_str());
    std::abort();
  }
  Group* group() const { return g_.get(); }

 private:
  std::shared_ptr<Group> g_;
  int rank_;
  int splits_ = 0;  // every rank splits in the same order, so the count names the split
};

class ThreadDeviceComm : public DeviceComm {
 public:
  ThreadDeviceComm(Group* g, int rank) : g_(g), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return g_->size; }
  bool takes_host_memory() const override { return true; }
  absl::Status AllReduceSum(float* data, size_t count) override {
    g_->slots[rank_] = data;
    g_->barrier.arrive_and_wait();
    std::vector<float> sum(count, 0.f);
    for (int r = 0; r < g_->size; ++r) {  // the same order on every rank: identical results
      const float* x = static_cast<const float*>(g_->slots[r]);
      for (size_t i = 0; i < count; ++i) sum[i] += x[i];
    }
    g_->barrier.arrive_and_wait();
    std::memcpy(data, sum.data(), count * sizeof(float));
    return absl::OkStatus();
  }
  absl::Status AllGather(const float* send, float* recv, size_t count) override {
    g_->slots[rank_] = send;
    g_->barrier.arrive_and_wait();
    for (int r = 0; r < g_->size; ++r) std::memcpy(recv + r * count, g_->slots[r], count * sizeof(float));
    g_->barrier.arrive_and_wait();
    return absl::OkStatus();
  }
  absl::Status Send(const void* data, size_t bytes, int peer) override {
    auto& box = g_->mail[rank_ * g_->size + peer];
    std::lock_guard<std::mutex> lock(box.mu);
    box.messages.emplace_back(static_cast<const char*>(data), static_cast<const char*>(data) + bytes);
    box.cv.notify_all();
    return absl::OkStatus();
  }
  absl::Status Recv(void* data, size_t bytes, int peer) override {
    auto& box = g_->mail[peer * g_->size + rank_];
    std::unique_lock<std::mutex> lock(box.mu);
    box.cv.wait(lock, [&] { return !box.messages.empty(); });
    if (box.messages.front().size() != bytes)
      return absl::InternalError("thread comm: message size does not match the receive");
    std::memcpy(data, box.messages.front().data(), bytes);
    box.messages.pop_front();
    return absl::OkStatus();
  }

 private:
  Group* g_;
  int rank_;
};

}  // namespace

std::vector<std::unique_ptr<HostComm>> CreateThreadHostComms(int n) {
  auto g = std::make_shared<Group>(n);
  std::vector<std::unique_ptr<HostComm>> out;
  for (int r = 0; r < n; ++r) out.push_back(std::make_unique<ThreadHostComm>(g, r));
  return out;
}

std::unique_ptr<DeviceComm> CreateThreadDeviceComm(HostComm* host) {
  auto* t = dynamic_cast<ThreadHostComm*>(host);
  if (t == nullptr || host->size() == 1) return nullptr;
  return std::make_unique<ThreadDeviceComm>(t->group(), t->rank());
}

}  // namespace strata
