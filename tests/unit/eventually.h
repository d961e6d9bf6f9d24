// Waits, bounded, for a condition that another thread makes true: a
// generous deadline (machines stall), never a timed assertion.
#pragma once

#include <chrono>
#include <thread>

namespace skiff_test {

template <class F>
bool eventually(F cond, std::chrono::milliseconds deadline = std::chrono::seconds(15)) {
    auto until = std::chrono::steady_clock::now() + deadline;
    while (!cond()) {
        if (std::chrono::steady_clock::now() > until) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
}

}  // namespace skiff_test
