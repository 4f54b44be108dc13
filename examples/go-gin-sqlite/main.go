// go-gin-sqlite: a Gin app whose visit counter lives in SQLite, called through cgo. The binary is dynamically
// linked (libsqlite3, libc): unikctl ships it with the dynamic loader and exactly the libraries it needs.
package main

import (
	"log"
	"net/http"
	"os"
	"time"

	"example.com/go-gin-sqlite/visits"
	"github.com/gin-gonic/gin"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	log.SetFlags(0)
	db, err := visits.Open()
	if err != nil {
		log.Fatal(err)
	}

	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(gin.Recovery(), func(c *gin.Context) {
		start := time.Now()
		c.Next()
		log.Printf("request method=%s path=%s status=%d duration=%s", c.Request.Method, c.Request.URL.Path, c.Writer.Status(), time.Since(start))
	})
	// a framework route: :name comes from Gin's router
	r.GET("/hello/:name", func(c *gin.Context) {
		name := c.Param("name")
		n, err := db.Visit(name)
		if err != nil {
			c.JSON(http.StatusInternalServerError, gin.H{"error": err.Error()})
			return
		}
		host, _ := os.Hostname()
		c.JSON(http.StatusOK, gin.H{"hello": name, "framework": "gin", "host": host, "sqlite": visits.Version(), "visits": n})
	})
	r.GET("/", func(c *gin.Context) { c.String(http.StatusOK, "go-gin-sqlite: try /hello/world\n") })

	log.Printf("go-gin-sqlite listening on :%s (gin %s, sqlite %s via cgo)", port, gin.Version, visits.Version())
	if err := r.Run(":" + port); err != nil {
		log.Fatal(err)
	}
}
