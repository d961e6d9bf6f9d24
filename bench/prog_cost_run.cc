// skiff-prog-bench's machinery: see prog_cost_run.h.
#include "prog_cost_run.h"

#include <bpf/bpf.h>
#include <dirent.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <sched.h>
#include <signal.h>
#include <sys/utsname.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <optional>

namespace skiff::progbench {

using namespace skiff::bpftest;

namespace {

volatile std::sig_atomic_t g_stop = 0;
extern "C" void on_signal(int) { g_stop = 1; }

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double round1(double v) { return std::round(v * 10) / 10; }

}  // namespace

const char* verdict_name(uint32_t v) {
    switch (v) {
        case TC_ACT_OK: return "TC_ACT_OK";
        case TC_ACT_SHOT: return "TC_ACT_SHOT";
        case TC_ACT_REDIRECT: return "TC_ACT_REDIRECT";
        default: return "TC_ACT_?";
    }
}

// ---------------------------------------------------------------------------
// BPF_PROG_TEST_RUN
// ---------------------------------------------------------------------------

Call test_run_repeat(int prog_fd, const Bytes& frame, int ifindex, uint32_t repeat, Bytes* out, uint32_t mark) {
    __sk_buff ctx{}, ctx_out{};
    ctx.ifindex = static_cast<uint32_t>(ifindex);
    ctx.mark = mark;
    bpf_test_run_opts o{};
    o.sz = sizeof(o);
    o.data_in = frame.data();
    o.data_size_in = static_cast<uint32_t>(frame.size());
    if (out) {
        out->assign(frame.size() + 256, 0);
        o.data_out = out->data();
        o.data_size_out = static_cast<uint32_t>(out->size());
    }
    o.ctx_in = &ctx;
    o.ctx_size_in = sizeof(ctx);
    o.ctx_out = &ctx_out;
    o.ctx_size_out = sizeof(ctx_out);
    o.repeat = repeat;
    Call c;
    if (bpf_prog_test_run_opts(prog_fd, &o) != 0) {
        c.err = -errno;
        return c;
    }
    c.retval = o.retval;
    c.duration = o.duration;
    c.mark = ctx_out.mark;
    if (out) out->resize(o.data_size_out);
    return c;
}

Result<UniqueFd> load_empty_prog() {
    const bpf_insn insns[] = {
        {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, TC_ACT_OK},
        {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
    };
    int fd = bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, "skiff_empty", "GPL", insns, 2, nullptr);
    if (fd < 0) return Error::os(-fd, "load the empty tc program");
    return UniqueFd(fd);
}

// ---------------------------------------------------------------------------
// Pin dir: /sys/fs/bpf/skiff-progbench-<pid>, removed by the destructor
// ---------------------------------------------------------------------------

namespace {

const std::string kPinPrefix = "skiff-progbench-";

// Pin dirs of earlier runs that died without cleaning up (SIGKILL).
void sweep_dead_pin_dirs() {
    DIR* d = ::opendir("/sys/fs/bpf");
    if (!d) return;
    std::vector<std::string> dead;
    while (dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n.rfind(kPinPrefix, 0) != 0) continue;
        char* end = nullptr;
        long pid = std::strtol(n.c_str() + kPinPrefix.size(), &end, 10);
        if (pid <= 0 || *end != '\0') continue;
        if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) dead.push_back("/sys/fs/bpf/" + n);
    }
    ::closedir(d);
    for (const auto& p : dead) {
        std::string err = remove_pin_dir(p);
        std::fprintf(stderr, "prog-bench: removed stale %s%s%s\n", p.c_str(), err.empty() ? "" : ": ", err.c_str());
    }
}

class BenchPins {
public:
    BenchPins() : path_("/sys/fs/bpf/" + kPinPrefix + std::to_string(::getpid())) {}
    BenchPins(const BenchPins&) = delete;
    BenchPins& operator=(const BenchPins&) = delete;
    ~BenchPins() {
        if (!created_) return;
        std::string err = remove_pin_dir(path_);
        if (!err.empty()) std::fprintf(stderr, "prog-bench: cleanup: %s\n", err.c_str());
    }
    Status create() {
        if (std::string err = remove_pin_dir(path_); !err.empty()) return Error{EIO, err};
        created_ = true;
        return datapath::ensure_pin_dir(path_);
    }
    const std::string& path() const { return path_; }

private:
    std::string path_;
    bool created_ = false;
};

}  // namespace

// ---------------------------------------------------------------------------
// Checking and timing a path
// ---------------------------------------------------------------------------

std::string describe_counters(datapath::MetricsMap& m) {
    auto c = read_counters(m);
    return c.ok() ? describe(c.value()) : "(metrics: " + c.error().message + ")";
}

namespace {

// One check call: runs runs of p and compares verdict, mark and output.
Status check_path(const Path& p, uint32_t runs, datapath::MetricsMap& metrics) {
    Bytes out;
    Call c = test_run_repeat(p.prog_fd, p.frame, p.ifindex, runs, &out, p.mark);
    if (c.err) return Error::os(-c.err, p.name + ": BPF_PROG_TEST_RUN");
    if (c.retval != p.verdict)
        return Error::invalid(p.name + ": verdict " + std::to_string(c.retval) + " (" + verdict_name(c.retval) +
                              "), expected " + verdict_name(p.verdict) + " after " + std::to_string(runs) +
                              " run(s); counters: " + describe_counters(metrics));
    if (c.mark != p.mark_out)
        return Error::invalid(p.name + ": skb->mark " + std::to_string(c.mark) + " after " + std::to_string(runs) +
                              " run(s), expected " + std::to_string(p.mark_out));
    if (p.expected) {
        Bytes want = p.expected(runs);
        if (out != want)
            return Error::invalid(p.name + ": output frame after " + std::to_string(runs) + " run(s)\n  got  " +
                                  hex(out) + "\n  want " + hex(want));
    }
    if (p.after_call) SKIFF_TRY(p.after_call());
    return ok();
}

// What runs runs of p did to the counters (before -> after): each expected
// reason moved by one per run and no other verdict, translation or drop
// counter moved; counters that are neither (e.g. entry accounting) may move
// along. With p.counts_nothing, no counter at all may move.
Status check_counters(const Path& p, uint64_t runs, const Counters& before, const Counters& after) {
    auto delta = [&](const std::pair<uint32_t, uint32_t>& k) {
        auto a = after.find(k);
        auto b = before.find(k);
        return (a == after.end() ? 0 : a->second.packets) - (b == before.end() ? 0 : b->second.packets);
    };
    for (const auto& [k, v] : after) {
        const bool checked = p.counts_nothing || k.first < SKIFF_CT_ENTRY_INSERTED || k.first >= SKIFF_DROP_BASE;
        const bool expected = std::any_of(p.reasons.begin(), p.reasons.end(),
                                          [&](const Reason& r) { return r.reason == k.first && r.dir == k.second; });
        const uint64_t d = delta(k);
        if (expected ? d != runs : checked && d != 0)
            return Error::invalid(p.name + ": counter " + std::string(datapath::reason_name(k.first)) + "/" +
                                  std::string(datapath::dir_name(k.second)) + " moved by " + std::to_string(d) +
                                  " in " + std::to_string(runs) + " runs, expected " +
                                  std::to_string(expected ? runs : 0) + "; counters: " + describe(after));
    }
    for (const auto& r : p.reasons)
        if (after.find({r.reason, r.dir}) == after.end())
            return Error::invalid(p.name + ": counter " + std::string(datapath::reason_name(r.reason)) +
                                  " did not move; counters: " + describe(after));
    return ok();
}

// The kernel's bpf_stats of a program (zeros while they are off).
std::pair<uint64_t, uint64_t> prog_stats(int fd) {
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) return {0, 0};
    return {info.run_time_ns, info.run_cnt};
}

// runs runs of p (calls of p.batch runs): average ns per run; *stats_ns
// the bpf_stats figure over them (run_time_ns / run_cnt), 0 when off.
Result<double> measure(Path& p, uint64_t runs, datapath::MetricsMap& metrics, double* stats_ns = nullptr) {
    const uint64_t calls = std::max<uint64_t>(1, runs / p.batch);
    runs = calls * p.batch;
    const bool counted = !p.reasons.empty() || p.counts_nothing;
    Counters before;
    if (counted) {
        SKIFF_ASSIGN_OR_RETURN(before, read_counters(metrics));
    }
    uint64_t total_ns = 0;
    const auto stats0 = prog_stats(p.prog_fd);
    for (uint64_t i = 0; i < calls; ++i) {
        if (g_stop) return Error{EINTR, "interrupted"};
        Call c = test_run_repeat(p.prog_fd, p.frame, p.ifindex, p.batch, nullptr, p.mark);
        if (c.err == -EINTR && g_stop) return Error{EINTR, "interrupted"};
        if (c.err) return Error::os(-c.err, p.name + ": BPF_PROG_TEST_RUN");
        if (c.retval != p.verdict)
            return Error::invalid(p.name + ": call " + std::to_string(i) + " returned " + verdict_name(c.retval) +
                                  ", expected " + verdict_name(p.verdict) +
                                  "; counters: " + describe_counters(metrics));
        total_ns += uint64_t{c.duration} * p.batch;
        if (p.after_call) SKIFF_TRY(p.after_call());
    }
    if (stats_ns) {
        const auto stats1 = prog_stats(p.prog_fd);
        const uint64_t n = stats1.second - stats0.second;
        *stats_ns = n ? static_cast<double>(stats1.first - stats0.first) / static_cast<double>(n) : 0;
    }
    if (counted) {
        SKIFF_ASSIGN_OR_RETURN(Counters after, read_counters(metrics));
        SKIFF_TRY(check_counters(p, runs, before, after));
    }
    return static_cast<double>(total_ns) / static_cast<double>(runs);
}

}  // namespace

Status check_paths(const std::vector<Path>& paths, datapath::MetricsMap& metrics) {
    for (const auto& p : paths) {
        SKIFF_TRY(check_path(p, 1, metrics));
        if (p.batch > 1) SKIFF_TRY(check_path(p, p.batch, metrics));
    }
    return ok();
}

void add_single_run_copies(std::vector<Path>& paths, const std::string& base_single) {
    for (size_t i = 0; i < paths.size(); ++i) {
        if (paths[i].batch == 1 || paths[i].program == "empty") continue;
        Path p = paths[i];
        p.name += "_1run";
        p.description += " (1 run per call)";
        p.batch = 1;
        p.baseline = base_single;
        paths.insert(paths.begin() + static_cast<std::ptrdiff_t>(++i), std::move(p));
    }
}

Status time_paths(std::vector<Path>& paths, const Options& opt, datapath::MetricsMap& metrics) {
    for (auto& p : paths) SKIFF_TRY(measure(p, std::min<uint64_t>(opt.repeat, 20000), metrics));
    for (int t = 0; t < opt.trials; ++t) {
        for (auto& p : paths) {
            double stats_ns = 0;
            SKIFF_ASSIGN_OR_RETURN(double ns, measure(p, opt.repeat, metrics, &stats_ns));
            p.ns.push_back(ns);
            if (stats_ns > 0) p.stats_ns.push_back(stats_ns);
        }
        std::string line;
        for (const auto& p : paths) {
            char buf[96];
            std::snprintf(buf, sizeof(buf), " %s=%.1f", p.name.c_str(), p.ns.back());
            line += buf;
        }
        std::fprintf(stderr, "prog-bench: trial %d/%d ns/run:%s\n", t + 1, opt.trials, line.c_str());
    }
    return ok();
}

// ---------------------------------------------------------------------------
// The result
// ---------------------------------------------------------------------------

nlohmann::ordered_json result_json(const std::vector<Path>& paths, const Options& opt) {
    utsname u{};
    ::uname(&u);
    nlohmann::ordered_json result = nlohmann::ordered_json::object();
    result["repeat"] = opt.repeat;
    result["trials"] = opt.trials;
    result["kernel"] = std::string(u.release);
    result["cpu"] = opt.cpu >= 0 ? nlohmann::ordered_json(opt.cpu) : nlohmann::ordered_json(nullptr);
    result["method"] =
        "BPF_PROG_TEST_RUN duration (kernel-timed average ns per run, incl. its loop overhead: see the "
        "baseline with the same runs_per_call); each trial = repeat runs per path; paths that rewrite "
        "addresses or ports, clear skb->mark or create state run once per call (a 2nd run on the same skb "
        "would take another path)";
    auto find_path = [&](const std::string& name) -> const Path* {
        for (const auto& q : paths)
            if (q.name == name) return &q;
        return nullptr;
    };
    nlohmann::ordered_json arr = nlohmann::ordered_json::array();
    for (const auto& p : paths) {
        nlohmann::ordered_json j;
        j["name"] = p.name;
        j["program"] = p.program;
        j["verdict"] = verdict_name(p.verdict);
        j["ns_median"] = round1(median(p.ns));
        j["ns_min"] = round1(*std::min_element(p.ns.begin(), p.ns.end()));
        j["ns_max"] = round1(*std::max_element(p.ns.begin(), p.ns.end()));
        j["runs_per_call"] = p.batch;
        j["runs"] = std::max<uint64_t>(1, opt.repeat / p.batch) * p.batch;
        if (const Path* base = p.baseline.empty() ? nullptr : find_path(p.baseline)) {
            // Trials are interleaved: subtract the baseline of the same trial.
            std::vector<double> net;
            for (size_t i = 0; i < p.ns.size(); ++i) net.push_back(p.ns[i] - base->ns[i]);
            j["baseline"] = p.baseline;
            j["ns_over_baseline_median"] = round1(median(net));
        }
        if (!p.stats_ns.empty()) {
            // bpf_stats over the same runs: the program alone, timed like a
            // live packet (sched_clock() around the call), warm caches.
            j["bpf_stats_ns_median"] = round1(median(p.stats_ns));
        }
        nlohmann::ordered_json reasons = nlohmann::ordered_json::array();
        for (const auto& r : p.reasons)
            reasons.push_back(std::string(datapath::reason_name(r.reason)) + "/" +
                              std::string(datapath::dir_name(r.dir)));
        j["reasons"] = reasons;
        j["description"] = p.description;
        nlohmann::ordered_json trials = nlohmann::ordered_json::array();
        for (double v : p.ns) trials.push_back(round1(v));
        j["ns_trials"] = trials;
        arr.push_back(j);
    }
    result["paths"] = arr;
    return result;
}

// ---------------------------------------------------------------------------
// main()
// ---------------------------------------------------------------------------

namespace {

void usage(std::FILE* f) {
    std::fprintf(f,
                 "usage: skiff-prog-bench [--repeat N] [--quick] [--trials T] [--cpu C]\n"
                 "  --repeat N   runs per path per trial (default 1000000)\n"
                 "  --quick      --repeat 200000\n"
                 "  --trials T   trials, paths interleaved within each (default 5)\n"
                 "  --cpu C      pin to CPU C first\n"
                 "Prints JSON to stdout; needs CAP_SYS_ADMIN, CAP_BPF, CAP_NET_ADMIN.\n");
}

std::optional<Options> parse_args(int argc, char** argv) {
    Options o;
    auto num = [&](int& i, const char* name, long long lo, long long hi) -> std::optional<long long> {
        if (i + 1 >= argc) {
            std::fprintf(stderr, "prog-bench: %s needs a value\n", name);
            return std::nullopt;
        }
        char* end = nullptr;
        errno = 0;
        long long v = std::strtoll(argv[++i], &end, 10);
        if (errno || *end || v < lo || v > hi) {
            std::fprintf(stderr, "prog-bench: %s: %s is not a number in [%lld, %lld]\n", name, argv[i], lo, hi);
            return std::nullopt;
        }
        return v;
    };
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--repeat") {
            auto v = num(i, "--repeat", 1, 1000000000);
            if (!v) return std::nullopt;
            o.repeat = static_cast<uint64_t>(*v);
        } else if (a == "--quick") {
            o.repeat = 200000;
        } else if (a == "--trials") {
            auto v = num(i, "--trials", 1, 1000);
            if (!v) return std::nullopt;
            o.trials = static_cast<int>(*v);
        } else if (a == "--cpu") {
            auto v = num(i, "--cpu", 0, CPU_SETSIZE - 1);
            if (!v) return std::nullopt;
            o.cpu = static_cast<int>(*v);
        } else if (a == "-h" || a == "--help") {
            usage(stdout);
            std::exit(0);
        } else {
            std::fprintf(stderr, "prog-bench: unknown argument %s\n", a.c_str());
            usage(stderr);
            return std::nullopt;
        }
    }
    return o;
}

}  // namespace

int bench_main(int argc, char** argv, const RunFn& run) {
    auto opt = parse_args(argc, argv);
    if (!opt) return 2;

    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (int s : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(s, &sa, nullptr);
    ::signal(SIGPIPE, SIG_IGN);

    if (opt->cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(opt->cpu, &set);
        if (::sched_setaffinity(0, sizeof(set), &set) != 0) {
            std::fprintf(stderr, "prog-bench: pin to CPU %d: %s\n", opt->cpu, std::strerror(errno));
            return 1;
        }
    }

    // bpf_stats on while this process runs (the kernel switches them off
    // when the fd closes, also if it dies; the sysctl is not written): each
    // path also gets the figure live packets get. Both the path and its
    // empty-program baseline pay the stats' clock reads, so the ns over
    // baseline stay comparable with runs without them.
    UniqueFd stats_fd(bpf_enable_stats(BPF_STATS_RUN_TIME));
    if (!stats_fd.valid())
        std::fprintf(stderr, "prog-bench: bpf_enable_stats: %s (no bpf_stats figures)\n", std::strerror(errno));

    sweep_dead_pin_dirs();
    nlohmann::ordered_json result;
    Status s = ok();
    {
        BenchPins pins;  // removed when this scope ends, whatever happened
        s = pins.create();
        if (s.ok()) s = run(*opt, pins.path(), result);
    }
    if (!s.ok()) {
        std::fprintf(stderr, "prog-bench: FAILED: %s\n", s.error().message.c_str());
        return 1;
    }
    std::printf("%s\n", result.dump(2).c_str());
    return 0;
}

}  // namespace skiff::progbench
