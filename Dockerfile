FROM python:3.11-slim
WORKDIR /app
COPY requirements*.txt ./
# CPU image: the lean variant (xgboost-cpu, no NCCL wheel); see docs/models.md, "Install variants"
RUN pip install --no-cache-dir -r requirements-cpu.txt
COPY . .
# Runtime state, the users file included: keep it on a volume.
ENV PM_HOME=/app/data
# A container must listen on 0.0.0.0 to be reached, so the dashboard asks for a sign-in: create the first
# admin with `docker exec -it CONTAINER python -m core users add NAME --role admin` (docs/users.md, "In a container").
# PM_AUTH=required keeps it so even if the address is changed.
ENV PM_AUTH=required
EXPOSE 8501
CMD ["sh", "-c", "python -m core setup && python app.py --server.address 0.0.0.0 --server.port 8501"]
