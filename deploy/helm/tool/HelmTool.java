// Helm's lint and template through helm-java, run as a single source file
// (`java -cp 'libs/*' HelmTool.java ...`): deploy/helm/helm.sh resolves the classpath.
//
//   lint CHART                                        messages; exit 1 when lint fails
//   template CHART RELEASE NAMESPACE KUBE_VERSION [VALUES_FILE ...]   manifests on stdout
//   cases CHART KUBE_VERSION OUT_DIR NAME=VALUES_FILE[,VALUES_FILE...] ...
//       lint.txt, then NAME.yaml (the manifests) or NAME.error (why Helm refused) per
//       case, from one JVM: the tests render many value sets in seconds.

import com.marcnuri.helm.Helm;
import com.marcnuri.helm.LintResult;
import com.marcnuri.helm.TemplateCommand;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;

public class HelmTool {
  static final String RELEASE = "revops";
  static final String NAMESPACE = "revops";

  public static void main(String[] args) throws IOException {
    if (args.length < 2) {
      usage();
    }
    Path chart = Paths.get(args[1]);
    switch (args[0]) {
      case "lint" -> {
        LintResult result = lint(chart);
        result.getMessages().forEach(System.out::println);
        System.exit(result.isFailed() ? 1 : 0);
      }
      case "template" -> {
        if (args.length < 5) {
          usage();
        }
        List<Path> values = new ArrayList<>();
        for (int i = 5; i < args.length; i++) {
          values.add(Paths.get(args[i]));
        }
        System.out.print(template(chart, args[2], args[3], args[4], values));
      }
      case "cases" -> {
        if (args.length < 4) {
          usage();
        }
        Path out = Files.createDirectories(Paths.get(args[3]));
        LintResult result = lint(chart);
        Files.writeString(
            out.resolve("lint.txt"),
            (result.isFailed() ? "FAILED\n" : "OK\n") + String.join("\n", result.getMessages()));
        for (int i = 4; i < args.length; i++) {
          String[] nameAndValues = args[i].split("=", 2);
          List<Path> values = new ArrayList<>();
          if (nameAndValues.length == 2 && !nameAndValues[1].isEmpty()) {
            for (String file : nameAndValues[1].split(",")) {
              values.add(Paths.get(file));
            }
          }
          try {
            String manifests = template(chart, RELEASE, NAMESPACE, args[2], values);
            Files.writeString(out.resolve(nameAndValues[0] + ".yaml"), manifests);
          } catch (RuntimeException e) {
            Files.writeString(out.resolve(nameAndValues[0] + ".error"), String.valueOf(e.getMessage()));
          }
        }
      }
      default -> usage();
    }
  }

  static LintResult lint(Path chart) {
    // Strict: a warning fails too.
    return new Helm(chart).lint().strict().call();
  }

  static String template(Path chart, String release, String namespace, String kubeVersion, List<Path> values) {
    TemplateCommand command =
        new Helm(chart).template().withName(release).withNamespace(namespace).withKubeVersion(kubeVersion);
    for (Path file : values) {
      command = command.withValuesFile(file);
    }
    return command.call();
  }

  static void usage() {
    System.err.println(
        "usage: HelmTool lint CHART | template CHART RELEASE NAMESPACE KUBE_VERSION [VALUES...]"
            + " | cases CHART KUBE_VERSION OUT_DIR NAME=VALUES[,VALUES]...");
    System.exit(2);
  }
}
