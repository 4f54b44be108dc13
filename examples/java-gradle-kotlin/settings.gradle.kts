rootProject.name = "java-gradle-kotlin"
