#include "delegate.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vector>

#include "common/fd.h"

extern char** environ;

namespace skiff::cni {

using nlohmann::json;

namespace {

std::string find_plugin(const std::string& type, const std::string& cni_path) {
    size_t pos = 0;
    while (pos <= cni_path.size()) {
        size_t end = cni_path.find(':', pos);
        std::string dir = cni_path.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
        if (!dir.empty()) {
            std::string p = dir + "/" + type;
            struct stat st {};
            if (::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111)) return p;
        }
        if (end == std::string::npos) break;
        pos = end + 1;
    }
    return "";
}

bool same_file(const std::string& a, const std::string& b) {
    struct stat sa {
    }, sb{};
    return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

struct Output {
    int status = -1;
    std::string out, err;
};

Result<Output> run(const std::string& exe, const std::vector<std::string>& envv, const std::string& input) {
    int in[2], out[2], err[2];
    if (::pipe2(in, O_CLOEXEC) || ::pipe2(out, O_CLOEXEC) || ::pipe2(err, O_CLOEXEC)) return Error::errno_("pipe");
    UniqueFd in_r(in[0]), in_w(in[1]), out_r(out[0]), out_w(out[1]), err_r(err[0]), err_w(err[1]);

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in_r.get(), 0);
    posix_spawn_file_actions_adddup2(&fa, out_w.get(), 1);
    posix_spawn_file_actions_adddup2(&fa, err_w.get(), 2);
    std::vector<char*> argv{const_cast<char*>(exe.c_str()), nullptr};
    std::vector<char*> envp;
    for (const auto& e : envv) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    // The plugin ignores SIGPIPE (a delegate may exit before reading all of
    // its stdin); the delegate starts with the default, as libcni's would.
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t dfl;
    sigemptyset(&dfl);
    sigaddset(&dfl, SIGPIPE);
    posix_spawnattr_setsigdefault(&attr, &dfl);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
    pid_t pid = 0;
    int rc = posix_spawn(&pid, exe.c_str(), &fa, &attr, argv.data(), envp.data());
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) return Error::os(rc, "spawn " + exe);
    in_r.reset();
    out_w.reset();
    err_w.reset();

    Output o;
    size_t written = 0;
    // Feed stdin and drain stdout/stderr together so no pipe can fill up.
    while (out_r.valid() || err_r.valid()) {
        std::vector<pollfd> fds;
        if (in_w.valid()) fds.push_back({in_w.get(), POLLOUT, 0});
        if (out_r.valid()) fds.push_back({out_r.get(), POLLIN, 0});
        if (err_r.valid()) fds.push_back({err_r.get(), POLLIN, 0});
        if (::poll(fds.data(), fds.size(), -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (const auto& p : fds) {
            if (!p.revents) continue;
            if (p.fd == in_w.get()) {
                ssize_t n = ::write(p.fd, input.data() + written, input.size() - written);
                if (n > 0) written += static_cast<size_t>(n);
                if (n < 0 || written == input.size()) in_w.reset();
            } else {
                char buf[4096];
                ssize_t n = ::read(p.fd, buf, sizeof(buf));
                bool is_out = out_r.valid() && p.fd == out_r.get();
                if (n <= 0) {
                    (is_out ? out_r : err_r).reset();
                } else {
                    (is_out ? o.out : o.err).append(buf, static_cast<size_t>(n));
                }
            }
        }
        if (in_w.valid() && written == input.size()) in_w.reset();
    }
    int st = 0;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    o.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return o;
}

}  // namespace

CniResult<json> delegate(const std::string& type, const std::string& command, const Env& env,
                         const std::string& stdin_conf) {
    if (env.path.empty())
        return CniError{kInvalidEnv, "CNI_PATH is required to run the ipam plugin '" + type + "'", ""};
    std::string exe = find_plugin(type, env.path);
    if (exe.empty()) return CniError{kInvalidConfig, "ipam plugin '" + type + "' not found in CNI_PATH", env.path};

    if (same_file(exe, "/proc/self/exe"))
        return CniError{kInvalidConfig, "ipam plugin '" + type + "' is skiff itself (a delegation loop)", exe};

    std::vector<std::string> envv;
    const std::string marker = std::string(kDelegationMarker) + "=";
    for (char** e = environ; *e; ++e) {
        std::string_view v(*e);
        if (v.rfind("CNI_COMMAND=", 0) != 0 && v.rfind(marker, 0) != 0) envv.emplace_back(*e);
    }
    envv.push_back("CNI_COMMAND=" + command);
    envv.push_back(marker + std::to_string(::getpid()));

    auto r = run(exe, envv, stdin_conf);
    if (!r) return CniError{kInternal, "running ipam plugin '" + type + "' failed", r.error().message};
    json out = r->out.empty() ? json() : json::parse(r->out, nullptr, false);
    if (r->status != 0) {
        if (out.is_object() && out.contains("code") && out["code"].is_number_integer())
            return CniError{out["code"].get<int>(), "ipam plugin '" + type + "': " + out.value("msg", std::string()),
                            out.value("details", std::string())};
        return CniError{kInternal,
                        "ipam plugin '" + type + "' " + command + " exited with status " + std::to_string(r->status),
                        r->err.substr(0, 2048)};
    }
    if (out.is_discarded())
        return CniError{kDecodeFailure, "ipam plugin '" + type + "' printed output that is not JSON",
                        r->out.substr(0, 512)};
    return out;
}

}  // namespace skiff::cni
