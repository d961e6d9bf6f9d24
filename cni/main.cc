// skiff: the CNI plugin executable. Environment and stdin in, result or
// error JSON on stdout; logs go to stderr or the configured logFile.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "datapath/datapath.h"
#include "datapath/pins.h"
#include "common/log.h"
#include "config.h"
#include "plugin.h"

namespace {

#ifdef SKIFF_TEST_HOOKS
// Tests only (CMake option SKIFF_TEST_HOOKS; not in the binary otherwise).
// SKIFF_FAULT_INJECT=<point> fails the ADD at that point, =kill:<point>
// kills the process there (tests of rollback and crash safety),
// =hold:<point>:<file> holds it there while <file> exists, at most 60 s
// (tests of work still pending, e.g. DEL's background veth deletion).
bool fault(const char* point) {
    const char* spec = std::getenv("SKIFF_FAULT_INJECT");
    if (!spec) return false;
    std::string s(spec);
    if (s.rfind("kill:", 0) == 0) {
        if (s.substr(5) == point) ::raise(SIGKILL);
        return false;
    }
    if (s.rfind("hold:", 0) == 0) {
        auto colon = s.find(':', 5);
        if (colon == std::string::npos || s.substr(5, colon - 5) != point) return false;
        const std::string file = s.substr(colon + 1);
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
        while (::access(file.c_str(), F_OK) == 0 && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        return false;
    }
    return s == point;
}
#endif

// stdin/stdout/stderr onto /dev/null; every fd inherited from the caller
// closed. Those are the ones without close-on-exec (they came through the
// exec); the plugin opens all of its own close-on-exec, and keeps them (the
// log file among them).
void detach_fds() {
    int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null < 0) skiff::log::set_level(skiff::log::Level::Silent);  // fd 2 may be reused below
    for (int fd = 0; fd <= 2; ++fd) {
        if (null >= 0)
            ::dup2(null, fd);
        else
            ::close(fd);
    }
    if (null > 2) ::close(null);
    std::vector<int> inherited;
    if (DIR* d = ::opendir("/proc/self/fd")) {
        while (dirent* e = ::readdir(d)) {
            int fd = std::atoi(e->d_name);
            if (fd > 2 && fd != ::dirfd(d) && !(::fcntl(fd, F_GETFD) & FD_CLOEXEC)) inherited.push_back(fd);
        }
        ::closedir(d);
    }
    for (int fd : inherited) ::close(fd);
}

// Runs job in a child that outlives the plugin: its own session, stdio
// detached, so the runtime reading our stdout sees EOF when we exit and
// reads nothing but our result. Not waited for: once we exit it is
// reparented (to init or the runtime's subreaper), which reaps it.
skiff::Status spawn_detached(const std::function<void()>& job) {
    pid_t child = ::fork();
    if (child < 0) return skiff::Error::errno_("fork");
    if (child == 0) {
        // Named before the runtime's pipes are let go: whoever sees our
        // result (EOF on stdout) sees the job as skiff-bg.
        ::prctl(PR_SET_NAME, "skiff-bg");
        ::setsid();
        detach_fds();
        job();
        ::_exit(0);  // no atexit handlers, no stdio flush
    }
    return skiff::ok();
}

bool is_stdout(const std::string& path) {
    struct stat out {
    }, st{};
    return ::fstat(STDOUT_FILENO, &out) == 0 && ::stat(path.c_str(), &st) == 0 && out.st_dev == st.st_dev &&
           out.st_ino == st.st_ino;
}

int run() {
    skiff::log::set_prefix("skiff");
    // A reader that went away (a delegate that exited before taking its
    // stdin, a runtime that gave up) is an error to report, not a death.
    ::signal(SIGPIPE, SIG_IGN);
    // A byte past the limit is enough to refuse the config: never more.
    std::string input(skiff::cni::kMaxConfigBytes + 1, '\0');
    std::cin.read(input.data(), static_cast<std::streamsize>(input.size()));
    input.resize(static_cast<size_t>(std::cin.gcount()));
    auto pod_network = skiff::cni::make_netlink_pod_network();
    skiff::cni::Deps deps;
    deps.datapath = [](const std::string& pin) { return skiff::make_bpf_datapath(pin); };
    deps.pod_network = pod_network.get();
#ifdef SKIFF_TEST_HOOKS
    deps.fault = fault;
#endif
    deps.background = spawn_detached;
    deps.is_stdout = is_stdout;
    deps.pin_dir_problem = skiff::datapath::pin_dir_problem;
    auto out = skiff::cni::run_plugin([](const char* k) { return std::getenv(k); }, input, deps);
    if (!out.stdout_text.empty()) std::cout << out.stdout_text << std::flush;
    return out.exit_code;
}

}  // namespace

int main() {
    try {
        return run();
    } catch (...) {
        // Only what run_plugin itself could not report (no memory left for
        // the error object, say) arrives here: a fixed answer, no allocation.
        static const char kFatal[] = "{\"cniVersion\":\"1.1.0\",\"code\":999,\"msg\":\"internal error\"}\n";
        (void)!::write(STDOUT_FILENO, kFatal, sizeof(kFatal) - 1);
        return 1;
    }
}
