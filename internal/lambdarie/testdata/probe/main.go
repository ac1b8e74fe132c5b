// Command probe is a Lambda function for the lambdarie tests: it reports its
// environment and pid, and fails, exits or hangs on request.
package main

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
)

type request struct {
	Do  string `json:"do"`
	Env string `json:"env"`
}

type response struct {
	Value        string `json:"value"`
	Present      bool   `json:"present"`
	PID          int    `json:"pid"`
	FunctionName string `json:"function_name"`
}

func main() {
	lambda.Start(func(ctx context.Context, r request) (response, error) {
		switch r.Do {
		case "fail":
			return response{}, errors.New("asked to fail")
		case "exit":
			os.Exit(3)
		case "hang":
			select {
			case <-time.After(time.Minute):
			case <-ctx.Done():
			}
		}
		v, ok := os.LookupEnv(r.Env)
		return response{Value: v, Present: ok, PID: os.Getpid(), FunctionName: os.Getenv("AWS_LAMBDA_FUNCTION_NAME")}, nil
	})
}
