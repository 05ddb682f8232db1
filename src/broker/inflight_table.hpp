// Internal: the router's table of forwarded, unanswered requests, keyed by
// (caller peer id, msgid) and holding the worker's peer id and, for a request that
// carried a deadline, when it expires. Open addressing with
// linear probing and backward-shift deletion: no allocation per insert once the
// table has grown to the working set, which keeps the router's hot path
// allocation-free. Not thread-safe (the router's loop owns it).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace plexus::broker::detail {

class inflight_table {
 public:
  static constexpr std::uint64_t key(std::uint32_t caller, std::uint32_t msgid) noexcept {
    return (static_cast<std::uint64_t>(caller) << 32) | msgid;
  }

  inflight_table() { slots_.resize(1024); }

  // Inserts or overwrites; true when the key was new. Caller ids start at 1, so key 0
  // never occurs.
  bool put(std::uint64_t k, std::uint32_t worker) {
    if ((size_ + 1) * 2 > slots_.size()) grow();
    auto i = index(k);
    while (slots_[i].key != 0 && slots_[i].key != k)
      i = (i + 1) & mask();
    const bool added = slots_[i].key == 0;
    if (added) ++size_;
    slots_[i] = {k, worker, 0};
    return added;
  }

  // Inserts `k` → `worker` (expiring at `expires`, 0: never) and returns true when `k`
  // is absent; when present, returns false and leaves the entry as it was.
  [[nodiscard]] bool insert(std::uint64_t k, std::uint32_t worker, std::int64_t expires = 0) {
    if ((size_ + 1) * 2 > slots_.size()) grow();
    auto i = index(k);
    while (slots_[i].key != 0) {
      if (slots_[i].key == k) return false;
      i = (i + 1) & mask();
    }
    ++size_;
    slots_[i] = {k, worker, expires};
    return true;
  }

  // The worker of `k` when its entry is there and expires at exactly `expires`, else 0.
  // (A deadline heap holds (expires, key) pairs; this tells a live one from one whose
  // call was answered, or whose key a later call reused.)
  std::uint32_t worker_if_expiring(std::uint64_t k, std::int64_t expires) const noexcept {
    auto i = index(k);
    while (slots_[i].key != 0) {
      if (slots_[i].key == k) return slots_[i].expires == expires ? slots_[i].worker : 0;
      i = (i + 1) & mask();
    }
    return 0;
  }

  // Removes the entry only when it is there and its worker is `worker`: true then.
  // An entry of another worker stays.
  [[nodiscard]] bool take_if(std::uint64_t k, std::uint32_t worker) noexcept {
    auto i = index(k);
    while (slots_[i].key != 0) {
      if (slots_[i].key == k) {
        if (slots_[i].worker != worker) return false;
        erase_at(i);
        return true;
      }
      i = (i + 1) & mask();
    }
    return false;
  }

  // Removes the entry and returns its worker, or 0 when absent.
  std::uint32_t take(std::uint64_t k) noexcept {
    auto i = index(k);
    while (slots_[i].key != 0) {
      if (slots_[i].key == k) {
        const auto worker = slots_[i].worker;
        erase_at(i);
        return worker;
      }
      i = (i + 1) & mask();
    }
    return 0;
  }

  // Removes every entry whose worker is `worker`, calling fn(caller, msgid) for each.
  void drain_worker(std::uint32_t worker,
                    const std::function<void(std::uint32_t, std::uint32_t)>& fn) {
    std::vector<std::uint64_t> keys;
    for (const auto& s : slots_)
      if (s.key != 0 && s.worker == worker) keys.push_back(s.key);
    for (auto k : keys) {
      take(k);
      fn(static_cast<std::uint32_t>(k >> 32), static_cast<std::uint32_t>(k));
    }
  }

  std::size_t size() const noexcept { return size_; }

 private:
  struct slot {
    std::uint64_t key = 0;
    std::uint32_t worker = 0;
    std::int64_t expires = 0;  // the router's clock; 0: no deadline
  };

  std::size_t mask() const noexcept { return slots_.size() - 1; }
  std::size_t index(std::uint64_t k) const noexcept {
    // Fibonacci hashing spreads sequential msgids of one caller.
    return static_cast<std::size_t>((k * 0x9E3779B97F4A7C15ull) >> 20) & mask();
  }

  void erase_at(std::size_t hole) noexcept {
    // Backward-shift: pull later entries of the probe chain into the hole.
    auto i = (hole + 1) & mask();
    while (slots_[i].key != 0) {
      const auto home = index(slots_[i].key);
      // Move slot i into the hole if its home is not cyclically in (hole, i].
      const bool movable = hole <= i ? (home <= hole || home > i) : (home <= hole && home > i);
      if (movable) {
        slots_[hole] = slots_[i];
        hole = i;
      }
      i = (i + 1) & mask();
    }
    slots_[hole] = {};
    --size_;
  }

  void reinsert(const slot& s) {
    auto i = index(s.key);
    while (slots_[i].key != 0)
      i = (i + 1) & mask();
    slots_[i] = s;
    ++size_;
  }

  void grow() {
    std::vector<slot> old(slots_.size() * 2);
    old.swap(slots_);
    size_ = 0;
    for (const auto& s : old)
      if (s.key != 0) reinsert(s);
  }

  std::vector<slot> slots_;
  std::size_t size_ = 0;
};

}  // namespace plexus::broker::detail
