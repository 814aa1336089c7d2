// SPDX-License-Identifier: Apache-2.0
// The database store's schema (docs/store.md) and its rows in PostgreSQL's
// COPY text format: one line per row, tab-separated, \N for NULL. The
// column lists here are the one definition: the DDL, the COPY statements
// and the row writers all follow them.
//
// Threading: plain functions; callers own their buffers.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "wattpipe/pipeline/window.hpp"

namespace wattpipe::publish::store {

inline constexpr int kSchemaVersion = 1;

struct ColumnDef {
  std::string_view name, type;
};

enum class Table { windows, steps, spectra };

// The columns of a table, in the order its rows are written.
std::span<const ColumnDef> columns(Table t);
std::string_view table_name(Table t);
// "CREATE TABLE IF NOT EXISTS ..." for every table, in one string.
std::string schema_sql();
// "COPY name (c1, c2, ...) FROM STDIN" (into `into`, default the table itself).
std::string copy_sql(Table t, std::string_view into = {});
// "INSERT INTO table SELECT * FROM from ON CONFLICT DO NOTHING": a retried batch's rows once.
std::string insert_new_sql(Table t, std::string_view from);

// Appends COPY text: `s` with backslash, tab, newline and CR escaped.
void append_text(std::string& out, std::string_view s);
// Appends a timestamptz in UTC to the microsecond: 2026-12-04 03:36:56.123456+00.
void append_timestamp(std::string& out, std::int64_t utc_ns);
// The window's key time (t_start), to the microsecond the database keeps.
inline std::int64_t key_us(std::int64_t utc_ns) { return utc_ns >= 0 ? (utc_ns + 500) / 1000 : -((-utc_ns + 500) / 1000); }

// One row of wattpipe_windows (with its newline).
void append_window_row(std::string& out, std::string_view module_id, std::string_view meter_id,
                       const pipeline::WindowRecord& r);
// The window's spectra row (harmonics, ripple bands and peaks): false, and
// nothing appended, when the window has none.
bool append_spectra_row(std::string& out, std::string_view module_id, const pipeline::WindowRecord& r);
// One row of wattpipe_steps per step the window carries; returns how many.
unsigned append_step_rows(std::string& out, std::string_view module_id, const pipeline::WindowRecord& r);

}  // namespace wattpipe::publish::store
