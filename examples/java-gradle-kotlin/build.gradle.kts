// java-gradle-kotlin: a dependency-free HTTP server built by Gradle (Kotlin DSL) with the application plugin.
// unikctl runs ./gradlew when the project has one, else gradle on PATH: `clean installDist`, then starts
// build/install/java-gradle-kotlin/lib with the main class of the start script Gradle wrote.
plugins {
    application
}

java {
    sourceCompatibility = JavaVersion.VERSION_17
    targetCompatibility = JavaVersion.VERSION_17
}

application {
    mainClass.set("example.Main")
}
