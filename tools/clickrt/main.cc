// clickrt: compile and run click-through-rate models.
#include <iostream>

#include "clickrt/status.h"
#include "commands.h"
#include "gpu.h"

namespace clickrt::cli {

int Fail(const Status& status) {
  std::cerr << "error: " << status.ToString() << "\n";
  switch (status.code()) {
    case StatusCode::kNotFound: return 3;
    case StatusCode::kUnimplemented: return 4;
    case StatusCode::kDataLoss: return 5;
    default: return 1;
  }
}

}  // namespace clickrt::cli

int main(int argc, char** argv) {
  CLI::App app{
      "clickrt: an inference compiler and server for click-through-rate models.\n"
      "Exit codes: 0 ok, 1 error, 2 bad usage, 3 not found, 4 unsupported, 5 corrupt file."};
  app.set_version_flag("--version", std::string("clickrt ") + CLICKRT_VERSION + " (" +
                                        CLICKRT_GIT_REV + ")");
  app.require_subcommand(1);
  int exit_code = 0;
  clickrt::cli::gpu::Install();
  clickrt::cli::RegisterBuild(app, &exit_code);
  clickrt::cli::RegisterInspect(app, &exit_code);
  clickrt::cli::RegisterBench(app, &exit_code);
  clickrt::cli::RegisterRun(app, &exit_code);
  clickrt::cli::RegisterInfo(app, &exit_code);
  clickrt::cli::RegisterDevices(app, &exit_code);
  clickrt::cli::RegisterServe(app, &exit_code);
  clickrt::cli::RegisterLoadtest(app, &exit_code);
  clickrt::cli::RegisterFeatures(app, &exit_code);
  clickrt::cli::RegisterCalibrate(app, &exit_code);
  clickrt::cli::RegisterEval(app, &exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  } catch (const std::exception& e) {
    // Library code returns Status; this only catches the unexpected (e.g. std::bad_alloc).
    std::cerr << "error: INTERNAL: " << e.what() << "\n";
    return 1;
  }
  return exit_code;
}
