// Minimal leveled logger writing to stderr or an append-only file. Never to
// stdout: for the CNI plugin stdout is the result.
#pragma once

#include <string>

namespace skiff::log {

enum class Level { Debug = 0, Info = 1, Warn = 2, Error = 3, Silent = 4 };

// Default: stderr at Warn. A file sink also receives Info and above.
void set_file(const std::string& path);
void set_level(Level l);
void set_prefix(const std::string& prefix);

void write(Level l, const std::string& msg);
inline void debug(const std::string& m) { write(Level::Debug, m); }
inline void info(const std::string& m) { write(Level::Info, m); }
inline void warn(const std::string& m) { write(Level::Warn, m); }
inline void error(const std::string& m) { write(Level::Error, m); }

}  // namespace skiff::log
