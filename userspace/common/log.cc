#include "log.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

#include "fd.h"

namespace skiff::log {
namespace {

struct Sink {
    std::mutex mu;
    UniqueFd fd;
    Level level = Level::Warn;
    std::string prefix = "skiff";
};

Sink& sink() {
    static Sink s;
    return s;
}

const char* level_name(Level l) {
    switch (l) {
        case Level::Debug: return "debug";
        case Level::Info: return "info";
        case Level::Warn: return "warn";
        case Level::Error: return "error";
        case Level::Silent: return "";
    }
    return "?";
}

}  // namespace

void set_file(const std::string& path) {
    auto& s = sink();
    std::lock_guard g(s.mu);
    int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
        s.fd.reset(fd);
        if (s.level > Level::Info && s.level != Level::Silent) s.level = Level::Info;
    }
}

void set_level(Level l) {
    std::lock_guard g(sink().mu);
    sink().level = l;
}

void set_prefix(const std::string& prefix) {
    std::lock_guard g(sink().mu);
    sink().prefix = prefix;
}

void write(Level l, const std::string& msg) {
    auto& s = sink();
    std::lock_guard g(s.mu);
    if (l < s.level) return;
    auto now = std::chrono::system_clock::now();
    auto t = std::chrono::system_clock::to_time_t(now);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm tm{};
    gmtime_r(&t, &tm);
    char ts[32];
    std::strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    char head[96];
    std::snprintf(head, sizeof(head), "%s.%03lldZ %s[%d] %s: ", ts, static_cast<long long>(ms), s.prefix.c_str(),
                  static_cast<int>(::getpid()), level_name(l));
    std::string line = head + msg + "\n";
    int fd = s.fd.valid() ? s.fd.get() : STDERR_FILENO;
    ssize_t ignored = ::write(fd, line.data(), line.size());
    (void)ignored;
}

}  // namespace skiff::log
