// skiff-prog-bench's machinery (prog_cost.cc sets up the node and its paths):
// BPF_PROG_TEST_RUN calls, the empty baseline program, checking and timing
// a path, the trials, the JSON result and main()'s frame with its pin dir.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bpf_test_env.h"  // frames.h, counters, remove_pin_dir

namespace skiff::progbench {

using bpftest::Bytes;

const char* verdict_name(uint32_t v);

// ---------------------------------------------------------------------------
// BPF_PROG_TEST_RUN
// ---------------------------------------------------------------------------

struct Call {
    int err = 0;            // 0 or -errno
    uint32_t retval = 0;    // the last run's TC action
    uint32_t duration = 0;  // average ns per run, as the kernel reports it
    uint32_t mark = 0;      // skb->mark after the last run
};

// repeat runs of prog on frame as received on ifindex, skb->mark = mark
// (never SKIFF_TRACE_MARK: that is a trace, not a packet); out (if given)
// gets the packet after the last run.
Call test_run_repeat(int prog_fd, const Bytes& frame, int ifindex, uint32_t repeat, Bytes* out = nullptr,
                     uint32_t mark = 0);

// A SCHED_CLS program of two instructions: r0 = TC_ACT_OK; exit.
Result<UniqueFd> load_empty_prog();

// ---------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------

struct Reason {
    uint32_t reason, dir;
};

struct Path {
    std::string name, program, description;
    int prog_fd = -1;
    int ifindex = 0;
    uint32_t mark = 0;  // skb->mark going in
    Bytes frame;
    uint32_t batch = 1;  // runs per BPF_PROG_TEST_RUN call
    uint32_t verdict = TC_ACT_REDIRECT;
    uint32_t mark_out = 0;        // skb->mark expected after a run
    std::vector<Reason> reasons;  // counters each run moves by one
    bool counts_nothing = false;  // no counter at all may move (reasons empty and this unset: not checked)
    std::function<Bytes(uint32_t runs)> expected;  // the frame after `runs` runs in one call
    std::function<Status()> after_call;            // outside the timed region
    std::string baseline;                          // the baseline entry with the same runs per call
    std::vector<double> ns;                        // per trial
    std::vector<double> stats_ns;                  // per trial: bpf_stats run_time_ns / run_cnt (when the stats are on)
};

std::string describe_counters(datapath::MetricsMap& m);

// Each path once and, batched ones, for a whole call: verdict, mark and
// output frame.
Status check_paths(const std::vector<Path>& paths, datapath::MetricsMap& metrics);

// A copy running once per call (name + "_1run", baseline base_single) after
// each batched path, comparable with the paths that must run once per call.
void add_single_run_copies(std::vector<Path>& paths, const std::string& base_single);

struct Options {
    uint64_t repeat = 1000000;
    int trials = 5;
    int cpu = -1;
};

// Warm-up, then opt.trials trials, every path in each in turn (p.ns).
Status time_paths(std::vector<Path>& paths, const Options& opt, datapath::MetricsMap& metrics);

// The result document (bench/run.py, bench/report.py read it).
nlohmann::ordered_json result_json(const std::vector<Path>& paths, const Options& opt);

// main(): arguments, signals, CPU pinning, a fresh pin dir (stale ones of
// dead runs swept), run, the JSON on stdout. Returns the exit code.
using RunFn = std::function<Status(const Options&, const std::string& pin_dir, nlohmann::ordered_json& result)>;
int bench_main(int argc, char** argv, const RunFn& run);

}  // namespace skiff::progbench
